//! The SQL of bulk imports of registry records, all or nothing.

use super::*;

/// Inserts one kind of registry record, in chunks of multi-row INSERTs.
// tidy: long match table — one arm per record kind, each the same short shape.
async fn import_kind(
    tx: &mut Tx<'_>,
    records: &[&Record],
    now: DateTime<Utc>,
    counts: &mut ImportCounts,
) -> crate::Result<()> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    macro_rules! insert {
        ($head:expr, $cols:expr, $what:expr, |$b:ident, $r:ident| $push:block) => {{
            for chunk in records.chunks(rows_per_statement($cols)) {
                let mut q = QueryBuilder::<Db>::new($head);
                q.push_values(chunk.iter(), |mut $b, $r| $push);
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, $what))?;
            }
            records.len() as u64
        }};
    }
    match first {
        Record::District { .. } => {
            counts.districts += insert!(
                "INSERT INTO districts (code, name_zh, name_en) ",
                3,
                "a district",
                |b, r| {
                    if let Record::District {
                        code,
                        name_zh,
                        name_en,
                    } = r
                    {
                        b.push_bind(code).push_bind(name_zh).push_bind(name_en);
                    }
                }
            )
        }
        Record::Street { .. } => {
            counts.streets += insert!(
                "INSERT INTO streets (id, code, district_code, name) ",
                4,
                "a street",
                |b, r| {
                    if let Record::Street {
                        id,
                        code,
                        district_code,
                        name,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(district_code)
                            .push_bind(name);
                    }
                }
            )
        }
        Record::Community { .. } => {
            counts.communities += insert!(
                "INSERT INTO communities (id, code, street_id, name) ",
                4,
                "a community",
                |b, r| {
                    if let Record::Community {
                        id,
                        code,
                        street_id,
                        name,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(street_id.0)
                            .push_bind(name);
                    }
                }
            )
        }
        Record::Grid { .. } => {
            counts.grids += insert!(
                "INSERT INTO grids (id, code, community_id, name, geometry) ",
                5,
                "a grid",
                |b, r| {
                    if let Record::Grid {
                        id,
                        code,
                        community_id,
                        name,
                        geometry,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(community_id.0)
                            .push_bind(name)
                            .push_bind(geometry.as_ref().map(|g| g.to_string()));
                    }
                }
            )
        }
        Record::Building { .. } => {
            counts.buildings += insert!(
                "INSERT INTO buildings (id, grid_id, address, lon, lat) ",
                5,
                "a building",
                |b, r| {
                    if let Record::Building {
                        id,
                        grid_id,
                        address,
                        lon,
                        lat,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(grid_id.0)
                            .push_bind(address)
                            .push_bind(*lon)
                            .push_bind(*lat);
                    }
                }
            )
        }
        Record::Party { .. } => {
            counts.parties += insert!(
                "INSERT INTO parties (id, kind, name, phone, email) ",
                5,
                "a party",
                |b, r| {
                    if let Record::Party {
                        id,
                        kind,
                        name,
                        phone,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(kind)
                            .push_bind(name)
                            .push_bind(phone)
                            .push_bind(email);
                    }
                }
            )
        }
        Record::Unit { .. } => {
            // A unit's place is copied from its building in the same statement; a unit
            // whose building does not exist would drop out of the join, so the count of
            // rows written is checked.
            let mut codes = crate::registry::PublicCodes::new();
            for chunk in records.chunks(rows_per_statement(16)) {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO units (id, address_code, building_id, address, lon, lat, \
                     floor_area, occupants, party_id, created_at, evening_only, stars, \
                     last_inspected_at, next_due_at, public_code, checklist, grid_id, \
                     community_id, street_id, district_code) \
                     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                     v.column7, v.column8, v.column9, v.column10, v.column11, v.column12, \
                     v.column13, v.column14, v.column15, v.column16, b.grid_id, g.community_id, \
                     c.street_id, s.district_code FROM (",
                );
                q.push_values(chunk.iter(), |mut b, r| {
                    if let Record::Unit {
                        id,
                        address_code,
                        building_id,
                        address,
                        lon,
                        lat,
                        floor_area,
                        occupants,
                        party_id,
                        evening_only,
                        stars,
                        checklist,
                        last_inspected_at,
                        next_due_at,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(address_code)
                            .push_bind(building_id.0)
                            .push_bind(address)
                            .push_bind(*lon)
                            .push_bind(*lat)
                            .push_bind(*floor_area)
                            .push_bind(*occupants)
                            .push_bind(party_id.map(|p| p.0))
                            .push_bind(ms(now))
                            .push_bind(*evening_only)
                            .push_bind(stars.map(i64::from))
                            .push_bind(last_inspected_at.map(ms))
                            .push_bind(next_due_at.map(ms))
                            .push_bind(codes.code_for(*id))
                            .push_bind(
                                checklist.as_ref().map(|c| {
                                    serde_json::to_string(c).expect("checklists serialize")
                                }),
                            );
                    }
                });
                q.push(
                    ") AS v JOIN buildings b ON b.id = v.column3 \
                     JOIN grids g ON g.id = b.grid_id \
                     JOIN communities c ON c.id = g.community_id \
                     JOIN streets s ON s.id = c.street_id",
                );
                let written = q
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, "a unit"))?
                    .rows_affected();
                if written != chunk.len() as u64 {
                    return Err(crate::Error::invalid(
                        "records",
                        format!(
                            "{} units refer to a building that does not exist",
                            chunk.len() as u64 - written
                        ),
                    ));
                }
                let with_party: Vec<(i64, i64)> = chunk
                    .iter()
                    .filter_map(|r| match r {
                        Record::Unit {
                            id,
                            party_id: Some(p),
                            ..
                        } => Some((id.0, p.0)),
                        _ => None,
                    })
                    .collect();
                for part in with_party.chunks(rows_per_statement(3)) {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO unit_parties (unit_id, party_id, role, from_at) \
                         SELECT v.column1, v.column2, p.kind, v.column3 FROM (",
                    );
                    q.push_values(part.iter(), |mut b, (unit, party)| {
                        b.push_bind(*unit).push_bind(*party).push_bind(ms(now));
                    });
                    q.push(") AS v JOIN parties p ON p.id = v.column2");
                    q.build()
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| refusal(e, "a unit's responsible party"))?;
                }
            }
            counts.units += records.len() as u64;
        }
        Record::Inspector { .. } => {
            counts.inspectors += insert!(
                "INSERT INTO inspectors (id, name, phone, email, shift, capacity) ",
                6,
                "an inspector",
                |b, r| {
                    if let Record::Inspector {
                        id,
                        name,
                        phone,
                        email,
                        shift,
                        capacity,
                        ..
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(phone)
                            .push_bind(email)
                            .push_bind(shift)
                            .push_bind(capacity.map(i64::from));
                    }
                }
            );
            let pairs: Vec<(i64, i64)> = records
                .iter()
                .flat_map(|r| match r {
                    Record::Inspector { id, grids, .. } => {
                        grids.iter().map(|g| (id.0, g.0)).collect::<Vec<_>>()
                    }
                    _ => Vec::new(),
                })
                .collect();
            for part in pairs.chunks(rows_per_statement(2)) {
                let mut q =
                    QueryBuilder::<Db>::new("INSERT INTO inspector_grids (inspector_id, grid_id) ");
                q.push_values(part.iter(), |mut b, (i, g)| {
                    b.push_bind(*i).push_bind(*g);
                });
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, "an inspector's grid"))?;
            }
        }
        Record::Department { .. } => {
            counts.departments += insert!(
                "INSERT INTO departments (id, name, kind, district_code, email) ",
                5,
                "a department",
                |b, r| {
                    if let Record::Department {
                        id,
                        name,
                        kind,
                        district_code,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(kind)
                            .push_bind(district_code)
                            .push_bind(email);
                    }
                }
            )
        }
        Record::Supervisor { .. } => {
            counts.supervisors += insert!(
                "INSERT INTO supervisors (id, name, level, district_code, street_id, email) ",
                6,
                "a supervisor",
                |b, r| {
                    if let Record::Supervisor {
                        id,
                        name,
                        level,
                        district_code,
                        street_id,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(level)
                            .push_bind(district_code)
                            .push_bind(street_id.map(|s| s.0))
                            .push_bind(email);
                    }
                }
            )
        }
        // An officer is a person of a department: an account, no register row.
        Record::Officer { .. } => counts.officers += records.len() as u64,
    }
    let accounts: Vec<NewAccount> = records.iter().filter_map(|r| r.account()).collect();
    insert_accounts(tx, &accounts, now).await
}

/// Writes the accounts of the people an import names, so that they can sign in and be
/// told: parties, inspectors, supervisors and officers with an address.
async fn insert_accounts(
    tx: &mut Tx<'_>,
    accounts: &[NewAccount],
    now: DateTime<Utc>,
) -> crate::Result<()> {
    for chunk in accounts.chunks(rows_per_statement(6)) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO accounts (name, role, subject_id, email, phone, created_at) ",
        );
        q.push_values(chunk.iter(), |mut b, a| {
            b.push_bind(&a.name)
                .push_bind(a.role.as_str())
                .push_bind(a.subject)
                .push_bind(&a.email)
                .push_bind(&a.phone)
                .push_bind(ms(now));
        });
        q.build()
            .execute(&mut **tx)
            .await
            .map_err(|e| refusal(e, "an account"))?;
    }
    Ok(())
}
#[async_trait]
impl ImportStore for This {
    async fn import(&self, records: &[Record], now: DateTime<Utc>) -> crate::Result<ImportCounts> {
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by_key(|r| r.rank());
        let mut counts = ImportCounts::default();
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        for group in sorted.chunk_by(|a, b| a.rank() == b.rank()) {
            import_kind(&mut tx, group, now, &mut counts).await?;
        }
        // Callers' scopes cached by any process are resolved again.
        sqlx::query("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(counts)
    }

    async fn finish_import(&self) -> Result<(), Error> {
        after_import(self.writer()).await
    }
}
