//! A reproducible demo city: Guangzhou's 11 districts with generated streets, communities, grids, buildings, units, parties, inspectors, departments and supervisors.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::domain::{
    BuildingId, CommunityId, DepartmentId, GridId, InspectorId, PartyId, StreetId, SupervisorId,
    UnitId,
};
use crate::registry::Record;
use crate::spatial::outline::{District, guangzhou_districts};

/// In the demo city, every unit has a signed responsibility agreement except every
/// `AGREEMENT_GAP`-th, whose inspections find it missing.
pub const AGREEMENT_GAP: i64 = 10;

/// How rental units spread over the districts (a rough share, most in the urban-village
/// belt of Baiyun, Panyu and Tianhe).
const DISTRICT_WEIGHTS: &[(&str, u32)] = &[
    ("440103", 5),
    ("440104", 5),
    ("440105", 10),
    ("440106", 11),
    ("440111", 20),
    ("440112", 8),
    ("440113", 14),
    ("440114", 8),
    ("440115", 5),
    ("440117", 3),
    ("440118", 8),
];

const PLACE_CHARS: &[&str] = &[
    "东", "西", "南", "北", "新", "石", "龙", "凤", "沙", "岗", "塘", "桥", "华", "兴", "和", "平",
    "安", "宁", "江", "湖", "山", "岭", "湾", "洲", "田", "园", "元", "景", "泰", "云", "林", "翠",
    "金", "宝", "福", "康", "永", "丰", "珠", "鹤",
];
const SURNAMES: &[&str] = &[
    "陈", "李", "黄", "张", "梁", "林", "刘", "吴", "罗", "何", "郑", "杨", "谢", "郭", "邓", "冯",
    "曾", "周", "麦", "潘",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "华", "建", "文", "志", "海", "燕", "玲", "斌",
];

/// Department kinds and how a department of each kind is named in a district. Gas is
/// administered city-wide.
const DEPARTMENTS: &[(&str, &str, bool)] = &[
    ("fire", "消防救援大队", true),
    ("police", "公安分局", true),
    ("housing", "住房和城乡建设局", true),
    ("urban_management", "城市管理和综合执法局", true),
    ("market_regulation", "市场监督管理局", true),
    ("rental_office", "来穗人员服务管理局", true),
    ("gas", "广州市燃气管理办公室", false),
];

/// The sizes of a demo city of `units` units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub units: u64,
    pub streets: u64,
    pub communities: u64,
    pub grids: u64,
}

impl Plan {
    /// About 250 units a grid (20,000 grids for 5 million units), four grids a
    /// community up to the city's 2,759 communities, and up to 176 streets.
    pub fn for_units(units: u64) -> Plan {
        let grids = (units / 250).max(22);
        let communities = (grids / 4).clamp(22, 2759).min(grids);
        let streets = (communities / 8).clamp(11, 176).min(communities);
        Plan {
            units,
            streets,
            communities,
            grids,
        }
    }
}

/// Splits `total` into `parts` by `weights`, each part at least one.
fn apportion(total: u64, weights: &[u32]) -> Vec<u64> {
    let n = weights.len() as u64;
    let spare = total.saturating_sub(n);
    let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let mut out: Vec<u64> = weights
        .iter()
        .map(|w| 1 + spare * u64::from(*w) / sum)
        .collect();
    let mut given: u64 = out.iter().sum();
    let mut i = 0;
    while given < total {
        let len = out.len();
        out[i % len] += 1;
        given += 1;
        i += 1;
    }
    out
}

/// One grid of the demo city: its shape (a lattice cell, cut along the district's
/// outline where the outline crosses it), its bounding box and its place.
#[derive(Debug, Clone)]
pub struct GridCell {
    pub id: GridId,
    pub community: CommunityId,
    pub street: StreetId,
    pub district: usize,
    pub min: (f64, f64),
    pub max: (f64, f64),
    /// The grid's polygon, if it is not the whole box.
    pub cut: Option<geo::MultiPolygon<f64>>,
    /// Units to place in it.
    pub units: u64,
}

impl GridCell {
    fn holds(&self, lon: f64, lat: f64) -> bool {
        use geo::Contains;
        lon > self.min.0
            && lon < self.max.0
            && lat > self.min.1
            && lat < self.max.1
            && self
                .cut
                .as_ref()
                .is_none_or(|shape| shape.contains(&geo::Point::new(lon, lat)))
    }

    fn geometry(&self) -> serde_json::Value {
        match &self.cut {
            None => crate::spatial::shape::rectangle(self.min, self.max),
            Some(shape) => crate::spatial::shape::to_geojson(shape),
        }
    }
}

/// Keeps demo buildings this far (in metres) inside their district's outline: the
/// outline shipped is simplified by at most 20 m, and a unit must lie inside its
/// district's full outline too.
const MARGIN_M: f64 = 45.0;

/// A piece of a lattice cell cut by a district's outline is kept as a grid only if it
/// holds at least this share of the cell (slivers along the outline are left without
/// a grid).
const MIN_PIECE: f64 = 0.1;

/// A lattice cell of a district, before it becomes a grid.
struct Piece {
    row: i64,
    col: i64,
    min: (f64, f64),
    max: (f64, f64),
    cut: Option<geo::MultiPolygon<f64>>,
    /// Its area in square degrees (for sharing out units).
    area: f64,
}

/// Covers a district with a lattice of about `target` cells, each cut along the
/// district's outline where the outline crosses it.
fn lattice(district: &District, target: u64) -> Vec<Piece> {
    use geo::{Area, BooleanOps, BoundingRect};
    let shape = district.outline.shape();
    let rect = shape.bounding_rect().expect("a district has an extent");
    let k = ((rect.min().y + rect.max().y) / 2.0).to_radians().cos();
    let area = shape.unsigned_area() * k;
    let side = (area / target.max(1) as f64).sqrt();
    let (cw, ch) = (side / k, side);
    let cols = ((rect.max().x - rect.min().x) / cw).ceil().max(1.0) as i64;
    let rows = ((rect.max().y - rect.min().y) / ch).ceil().max(1.0) as i64;
    let mut pieces = Vec::new();
    for row in 0..rows {
        for col in 0..cols {
            let min = (
                rect.min().x + col as f64 * cw,
                rect.min().y + row as f64 * ch,
            );
            let max = (min.0 + cw, min.1 + ch);
            let cell_area = cw * ch;
            let piece = if district.outline.crosses(min, max) {
                let cell = geo::Rect::new(
                    geo::Coord { x: min.0, y: min.1 },
                    geo::Coord { x: max.0, y: max.1 },
                )
                .to_polygon();
                let cut = shape.intersection(&cell);
                let a = cut.unsigned_area();
                (a >= MIN_PIECE * cell_area).then_some((Some(cut), a))
            } else if district
                .outline
                .contains((min.0 + max.0) / 2.0, (min.1 + max.1) / 2.0)
            {
                Some((None, cell_area))
            } else {
                None
            };
            if let Some((cut, area)) = piece {
                pieces.push(Piece {
                    row,
                    col,
                    min,
                    max,
                    cut,
                    area,
                });
            }
        }
    }
    pieces
}

/// A generated city. Records come out in chunks so that a city of millions of units
/// never sits in memory at once.
#[derive(Debug)]
pub struct DemoCity {
    pub plan: Plan,
    pub seed: u64,
    /// The moment the city's patrol history leads up to.
    pub now: DateTime<Utc>,
    districts: &'static [District],
    skeleton: Vec<Record>,
    cells: Vec<GridCell>,
    street_names: Vec<String>,
    community_names: Vec<String>,
}

impl DemoCity {
    pub fn new(units: u64, seed: u64) -> DemoCity {
        let mut plan = Plan::for_units(units);
        let districts = guangzhou_districts();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let weights: Vec<u32> = districts
            .iter()
            .map(|d| {
                DISTRICT_WEIGHTS
                    .iter()
                    .find(|(c, _)| *c == d.code)
                    .map(|(_, w)| *w)
                    .unwrap_or(1)
            })
            .collect();
        let units_per = apportion(plan.units.max(districts.len() as u64), &weights);
        // Grids go where the units are: a district's share of grids is its share of
        // units, at least two, over a lattice inside its real outline (cut along it).
        let grids_per = apportion(plan.grids, &weights);
        let by_district: Vec<Vec<Piece>> = districts
            .iter()
            .zip(&grids_per)
            .map(|(d, g)| lattice(d, (*g).max(2)))
            .collect();
        plan.grids = by_district.iter().map(|p| p.len() as u64).sum();
        plan.communities = plan.communities.min(plan.grids);
        plan.streets = plan.streets.min(plan.communities);
        let cells_per: Vec<u32> = by_district.iter().map(|c| c.len() as u32).collect();
        let communities_per = apportion(plan.communities, &cells_per);
        let streets_per = apportion(plan.streets, &cells_per);

        let mut skeleton = Vec::new();
        let mut cells = Vec::new();
        let mut street_names = Vec::new();
        let mut community_names = Vec::new();
        for d in districts {
            skeleton.push(Record::District {
                code: d.code.clone(),
                name_zh: d.name_zh.clone(),
                name_en: d.name_en.clone(),
            });
        }
        let (mut street_id, mut community_id, mut grid_id) = (0i64, 0i64, 0i64);
        for (di, d) in districts.iter().enumerate() {
            // Consecutive grids (row by row) form a community, consecutive communities
            // a street: both nest inside the district.
            let pieces = &by_district[di];
            let g = pieces.len() as u64;
            let communities = communities_per[di].min(g).max(1);
            let streets = streets_per[di].min(communities).max(1);
            // Units are shared out by the grids' areas.
            let areas: Vec<u32> = pieces
                .iter()
                .map(|p| {
                    ((p.area / pieces[0].area.max(f64::MIN_POSITIVE)) * 1000.0).max(1.0) as u32
                })
                .collect();
            let grid_units = apportion(units_per[di].max(g), &areas);
            let mut first_community = 0;
            for s in 0..streets {
                street_id += 1;
                let name = format!("{}街道", place_name(&mut rng));
                skeleton.push(Record::Street {
                    id: StreetId(street_id),
                    code: format!("{}{:03}", d.code, s + 1),
                    district_code: d.code.clone(),
                    name: name.clone(),
                });
                street_names.push(name);
                let street_communities =
                    communities / streets + u64::from(s < communities % streets);
                for c in 0..street_communities {
                    community_id += 1;
                    let name = format!(
                        "{}{}",
                        place_name(&mut rng),
                        if rng.random_bool(0.4) {
                            "村"
                        } else {
                            "社区"
                        }
                    );
                    skeleton.push(Record::Community {
                        id: CommunityId(community_id),
                        code: format!("{}{:03}{:03}", d.code, s + 1, c + 1),
                        street_id: StreetId(street_id),
                        name: name.clone(),
                    });
                    community_names.push(name);
                    let index = first_community + c;
                    let lo = g * index / communities;
                    let hi = g * (index + 1) / communities;
                    for k in lo..hi {
                        grid_id += 1;
                        let p = &pieces[k as usize];
                        let cell = GridCell {
                            id: GridId(grid_id),
                            community: CommunityId(community_id),
                            street: StreetId(street_id),
                            district: di,
                            min: p.min,
                            max: p.max,
                            cut: p.cut.clone(),
                            units: grid_units[k as usize],
                        };
                        skeleton.push(Record::Grid {
                            id: GridId(grid_id),
                            code: format!("{}{:03}{:03}{:03}", d.code, s + 1, c + 1, k - lo + 1),
                            community_id: CommunityId(community_id),
                            name: format!("第{}网格（{}行{}列）", k - lo + 1, p.row + 1, p.col + 1),
                            geometry: Some(cell.geometry()),
                        });
                        cells.push(cell);
                    }
                }
                first_community += street_communities;
            }
        }
        // The plan's units are what the grids hold (each district holds at least one
        // unit a grid).
        plan.units = cells.iter().map(|c| c.units).sum::<u64>().max(plan.units);

        skeleton.extend(department_records(districts));

        skeleton.extend(supervisor_records(districts, street_id, &mut rng));

        skeleton.extend(inspector_records(&cells, &mut rng));

        DemoCity {
            plan,
            seed,
            now: DateTime::parse_from_rfc3339("2026-03-02T01:00:00Z")
                .expect("valid time")
                .to_utc(),
            districts,
            skeleton,
            cells,
            street_names,
            community_names,
        }
    }

    /// The same city, with its patrol history leading up to `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> DemoCity {
        self.now = now;
        self
    }

    /// Districts, streets, communities, grids, departments, supervisors and inspectors.
    pub fn skeleton(&self) -> &[Record] {
        &self.skeleton
    }

    pub fn cells(&self) -> &[GridCell] {
        &self.cells
    }

    /// Buildings, their parties and units, about `chunk_units` units per chunk.
    pub fn chunks(&self, chunk_units: u64) -> Chunks<'_> {
        Chunks {
            city: self,
            rng: ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed_c17f),
            chunk_units: chunk_units.max(1),
            cell: 0,
            left_in_cell: self.cells.first().map_or(0, |c| c.units),
            building: 0,
            party: 0,
            unit: 0,
            cycles: {
                let rubric = crate::grading::Rubric::builtin();
                [1, 2, 3, 4, 5].map(|s: u8| i64::from(rubric.patrol.cycle_days[&s.to_string()]))
            },
            rubric: crate::grading::Rubric::builtin(),
        }
    }
}

/// Departments: one of each kind per district, gas once for the city.
fn department_records(districts: &[District]) -> Vec<Record> {
    let mut skeleton = Vec::new();
    let mut dept_id = 0;
    for (kind, suffix, per_district) in DEPARTMENTS {
        if *per_district {
            for d in districts {
                dept_id += 1;
                skeleton.push(Record::Department {
                    id: DepartmentId(dept_id),
                    name: format!("{}{}", d.name_zh, suffix),
                    kind: kind.to_string(),
                    district_code: Some(d.code.clone()),
                    email: Some(format!("dept{dept_id}@anju.example")),
                });
            }
        } else {
            dept_id += 1;
            skeleton.push(Record::Department {
                id: DepartmentId(dept_id),
                name: suffix.to_string(),
                kind: kind.to_string(),
                district_code: None,
                email: Some(format!("dept{dept_id}@anju.example")),
            });
        }
    }

    skeleton
}

/// Supervisors: the city, each district, each of the `streets` streets.
fn supervisor_records(districts: &[District], streets: i64, rng: &mut ChaCha8Rng) -> Vec<Record> {
    let mut skeleton = Vec::new();
    let mut sup = 1;
    skeleton.push(Record::Supervisor {
        id: SupervisorId(sup),
        name: format!("{}（市级督导）", person_name(rng)),
        level: "city".into(),
        district_code: None,
        street_id: None,
        email: Some("city@anju.example".into()),
    });
    for d in districts {
        sup += 1;
        skeleton.push(Record::Supervisor {
            id: SupervisorId(sup),
            name: format!("{}（{}督导）", person_name(rng), d.name_zh),
            level: "district".into(),
            district_code: Some(d.code.clone()),
            street_id: None,
            email: Some(format!("sup{sup}@anju.example")),
        });
    }
    for s in 1..=streets {
        sup += 1;
        skeleton.push(Record::Supervisor {
            id: SupervisorId(sup),
            name: format!("{}（街道督导）", person_name(rng)),
            level: "street".into(),
            district_code: None,
            street_id: Some(StreetId(s)),
            email: Some(format!("sup{sup}@anju.example")),
        });
    }

    skeleton
}

/// Inspectors: one for every two grids of a community, on the morning or the afternoon
/// shift (错峰上班); then one evening inspector for each community, for the units whose
/// occupants are out by day.
fn inspector_records(cells: &[GridCell], rng: &mut ChaCha8Rng) -> Vec<Record> {
    let mut skeleton = Vec::new();
    let mut inspector = 0;
    let mut inspector_record = |shift: &str, grids: Vec<GridId>, rng: &mut ChaCha8Rng| {
        inspector += 1;
        Record::Inspector {
            id: InspectorId(inspector),
            name: person_name(rng),
            phone: Some(format!("139{:08}", inspector)),
            email: Some(format!("inspector{inspector}@anju.example")),
            shift: shift.to_string(),
            capacity: None,
            grids,
        }
    };
    let mut evening = Vec::new();
    for group in cells.chunk_by(|a, b| a.community == b.community) {
        for (k, pair) in group.chunks(2).enumerate() {
            let shift = ["morning", "afternoon"][k % 2];
            skeleton.push(inspector_record(
                shift,
                pair.iter().map(|c| c.id).collect(),
                rng,
            ));
        }
        evening.push(group.iter().map(|c| c.id).collect::<Vec<_>>());
    }
    for grids in evening {
        let record = inspector_record("evening", grids, rng);
        skeleton.push(record);
    }

    skeleton
}

/// The iterator of [`DemoCity::chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    city: &'a DemoCity,
    rng: ChaCha8Rng,
    chunk_units: u64,
    cell: usize,
    left_in_cell: u64,
    building: i64,
    party: i64,
    unit: i64,
    /// Patrol cycle in days by stars (from the rubric).
    cycles: [i64; 5],
    rubric: crate::grading::Rubric,
}

/// Where a building stands: a random point of its grid, well inside its district (or,
/// in a grid too thin for that, the grid's inner point).
fn building_site(cell: &GridCell, district: &District, rng: &mut ChaCha8Rng) -> (f64, f64) {
    for _ in 0..500 {
        let lon = rng.random_range(cell.min.0..cell.max.0);
        let lat = rng.random_range(cell.min.1..cell.max.1);
        if cell.holds(lon, lat) && district.outline.inside_by(lon, lat, MARGIN_M) {
            return (lon, lat);
        }
    }
    use geo::InteriorPoint;
    let shape = cell.cut.clone().unwrap_or_else(|| {
        geo::MultiPolygon::new(vec![
            geo::Rect::new(
                geo::Coord {
                    x: cell.min.0,
                    y: cell.min.1,
                },
                geo::Coord {
                    x: cell.max.0,
                    y: cell.max.1,
                },
            )
            .to_polygon(),
        ])
    });
    shape.interior_point().map_or(
        (
            (cell.min.0 + cell.max.0) / 2.0,
            (cell.min.1 + cell.max.1) / 2.0,
        ),
        |p| (p.x(), p.y()),
    )
}

impl Iterator for Chunks<'_> {
    type Item = Vec<Record>;

    fn next(&mut self) -> Option<Vec<Record>> {
        let cells = &self.city.cells;
        let mut out = Vec::new();
        let mut units_here = 0;
        while units_here < self.chunk_units {
            while self.left_in_cell == 0 {
                self.cell += 1;
                match cells.get(self.cell) {
                    Some(cell) => self.left_in_cell = cell.units,
                    None => return (!out.is_empty()).then_some(out),
                }
            }
            let rng = &mut self.rng;
            let cell = &cells[self.cell];
            let district = &self.city.districts[cell.district];
            // An urban-village building: a handful of floors, a few rooms a floor.
            let in_building = rng.random_range(1..=24u64).min(self.left_in_cell);
            self.left_in_cell -= in_building;
            self.building += 1;
            let (lon, lat) = building_site(cell, district, rng);
            let street_name = &self.city.street_names[(cell.street.0 - 1) as usize];
            let community_name = &self.city.community_names[(cell.community.0 - 1) as usize];
            let building_no = self.building;
            let address = format!(
                "{}{}{}{}号",
                district.name_zh, street_name, community_name, building_no
            );
            out.push(Record::Building {
                id: BuildingId(self.building),
                grid_id: cell.id,
                address: address.clone(),
                lon,
                lat,
            });
            // Most buildings answer through their owner; some through an agent or a
            // sub-landlord who rents the whole building and sublets it; a few units
            // have nobody on record.
            self.party += 1;
            let roll: f64 = rng.random();
            let kind = if roll < 0.7 {
                "landlord"
            } else if roll < 0.85 {
                "sublandlord"
            } else {
                "agent"
            };
            let party = PartyId(self.party);
            out.push(Record::Party {
                id: party,
                kind: kind.into(),
                name: person_name(rng),
                phone: Some(format!("138{:08}", self.party % 100_000_000)),
                email: Some(format!("party{}@anju.example", self.party)),
            });
            let per_floor = rng.random_range(2..=6u64);
            for k in 0..in_building {
                self.unit += 1;
                // A patrol history: most units were graded and inspected within a
                // little more than their cycle (so some are overdue); a tenth never.
                let (stars, last_inspected_at, next_due_at) = if rng.random_bool(0.1) {
                    (None, None, None)
                } else {
                    let stars = match rng.random_range(0..100u32) {
                        0..5 => 1u8,
                        5..20 => 2,
                        20..60 => 3,
                        60..90 => 4,
                        _ => 5,
                    };
                    let cycle = self.cycles[usize::from(stars - 1)];
                    let ago = TimeDelta::minutes(rng.random_range(0..cycle * 1440 * 13 / 10));
                    let last = self.city.now - ago;
                    (Some(stars), Some(last), Some(last + TimeDelta::days(cycle)))
                };
                let (floor, room) = (1 + k / per_floor, 1 + k % per_floor);
                let jittered = (
                    lon + rng.random_range(-0.00005..0.00005),
                    lat + rng.random_range(-0.00005..0.00005),
                );
                let unit_point = if cell.holds(jittered.0, jittered.1)
                    && district.outline.inside_by(jittered.0, jittered.1, MARGIN_M)
                {
                    jittered
                } else {
                    (lon, lat)
                };
                out.push(Record::Unit {
                    id: UnitId(self.unit),
                    address_code: format!("{}{:09}{:04}", district.code, building_no, k + 1),
                    building_id: BuildingId(self.building),
                    address: format!("{address}{floor}{room:02}房"),
                    // A few metres around the building, inside its grid and well
                    // inside its district (else at the building itself).
                    lon: unit_point.0,
                    lat: unit_point.1,
                    checklist: stars
                        .map(|s| self.rubric.checklist_for(s, |n| rng.random_range(0..n))),
                    floor_area: (rng.random_range(12.0..90.0f64) * 10.0).round() / 10.0,
                    occupants: rng.random_range(0..=6),
                    party_id: (!rng.random_bool(0.03)).then_some(party),
                    evening_only: rng.random_bool(0.2),
                    stars,
                    last_inspected_at,
                    next_due_at,
                });
            }
            units_here += in_building;
        }
        Some(out)
    }
}

fn place_name(rng: &mut ChaCha8Rng) -> String {
    let a = PLACE_CHARS[rng.random_range(0..PLACE_CHARS.len())];
    let mut b = PLACE_CHARS[rng.random_range(0..PLACE_CHARS.len())];
    while b == a {
        b = PLACE_CHARS[rng.random_range(0..PLACE_CHARS.len())];
    }
    format!("{a}{b}")
}

fn person_name(rng: &mut ChaCha8Rng) -> String {
    let s = SURNAMES[rng.random_range(0..SURNAMES.len())];
    let g1 = GIVEN[rng.random_range(0..GIVEN.len())];
    if rng.random_bool(0.6) {
        let g2 = GIVEN[rng.random_range(0..GIVEN.len())];
        format!("{s}{g1}{g2}")
    } else {
        format!("{s}{g1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Taxonomy;

    fn count(records: &[Record], pred: impl Fn(&Record) -> bool) -> usize {
        records.iter().filter(|r| pred(r)).count()
    }

    #[test]
    fn plan_scales_to_the_real_city() {
        let p = Plan::for_units(5_000_000);
        assert_eq!((p.grids, p.communities, p.streets), (20_000, 2759, 176));
        let small = Plan::for_units(1000);
        assert!(small.grids >= small.communities && small.communities >= small.streets);
        assert!(small.streets >= 11);
    }

    #[test]
    fn a_demo_city_has_every_unit_once_and_is_reproducible() {
        let t = Taxonomy::builtin();
        let city = DemoCity::new(3_000, 7);
        let sk = city.skeleton();
        assert_eq!(count(sk, |r| matches!(r, Record::District { .. })), 11);
        assert_eq!(
            count(sk, |r| matches!(r, Record::Grid { .. })),
            city.plan.grids as usize
        );
        assert_eq!(
            count(sk, |r| matches!(r, Record::Department { .. })),
            6 * 11 + 1
        );
        let chunks: Vec<Vec<Record>> = city.chunks(1000).collect();
        let units: Vec<&Record> = chunks
            .iter()
            .flatten()
            .filter(|r| matches!(r, Record::Unit { .. }))
            .collect();
        assert_eq!(units.len(), 3000);
        let codes: std::collections::BTreeSet<_> = units
            .iter()
            .map(|r| match r {
                Record::Unit { address_code, .. } => address_code.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(codes.len(), 3000, "address codes are unique");
        for r in sk.iter().chain(chunks.iter().flatten()) {
            r.check(&t).unwrap_or_else(|e| panic!("{r:?}: {e:?}"));
        }
        let again: Vec<Vec<Record>> = DemoCity::new(3_000, 7).chunks(1000).collect();
        assert_eq!(chunks, again);
        let other: Vec<Vec<Record>> = DemoCity::new(3_000, 8).chunks(1000).collect();
        assert_ne!(chunks, other);
    }

    #[test]
    fn units_lie_in_their_grid_and_grids_do_not_overlap() {
        use crate::spatial::grids::{GridIndex, GridShape, parse_area};
        let city = DemoCity::new(3_000, 1);
        let shapes: Vec<GridShape> = city
            .skeleton()
            .iter()
            .filter_map(|r| match r {
                Record::Grid {
                    id,
                    geometry: Some(g),
                    ..
                } => GridShape::new(*id, parse_area(g, "g").unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(shapes.len() as u64, city.plan.grids);
        let index = GridIndex::new(shapes);
        let grid_of_building: std::collections::HashMap<i64, GridId> = city
            .chunks(1000)
            .flatten()
            .filter_map(|r| match r {
                Record::Building { id, grid_id, .. } => Some((id.0, grid_id)),
                _ => None,
            })
            .collect();
        for chunk in city.chunks(500) {
            for r in chunk {
                if let Record::Unit {
                    lon,
                    lat,
                    building_id,
                    ..
                } = r
                {
                    assert_eq!(
                        index.grid_at(lon, lat),
                        Some(grid_of_building[&building_id.0])
                    );
                }
            }
        }
        // Every district has grids, and its grids sit around its centre.
        let districts = guangzhou_districts();
        for (i, d) in districts.iter().enumerate() {
            let mine: Vec<&GridCell> = city.cells().iter().filter(|c| c.district == i).collect();
            assert!(!mine.is_empty(), "{}", d.code);
        }
    }
}
