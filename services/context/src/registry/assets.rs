//! Assets: the nodes of a site's hierarchy (areas, lines, machines), any depth.

use sinter_proto::context::v1::Asset;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::paging::{ListScope, Page, PageRequest, like_pattern};
use super::{Registry, sites, timestamp, validate};
use crate::error::{RegistryError, is_foreign_key_violation, is_unique_violation};
use crate::mask::UpdateMask;

/// Fields of an asset an update may change.
pub const ASSET_FIELDS: [&str; 8] = [
    "site_id",
    "parent_id",
    "name",
    "level",
    "external_id",
    "criticality",
    "owner_team",
    "attributes_json",
];

/// Deepest hierarchy followed when walking up from an asset.
pub(crate) const MAX_DEPTH: i64 = 64;

const COLUMNS: &str = "id, site_id, parent_id, name, level, external_id, criticality, \
                       owner_team, attributes, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Asset, sqlx::Error> {
    Ok(Asset {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        parent_id: row
            .try_get::<Option<String>, _>("parent_id")?
            .unwrap_or_default(),
        name: row.try_get("name")?,
        level: row.try_get("level")?,
        external_id: row.try_get("external_id")?,
        criticality: row.try_get("criticality")?,
        owner_team: row.try_get("owner_team")?,
        attributes_json: row.try_get("attributes")?,
        created_at: timestamp(row.try_get("created_at")?),
        updated_at: timestamp(row.try_get("updated_at")?),
    })
}

/// Check an asset's own fields and put it in stored form (criticality defaults to medium).
pub(crate) fn checked(mut asset: Asset, prefix: &str) -> Result<Asset, RegistryError> {
    validate::id(&format!("{prefix}id"), &asset.id)?;
    validate::id(&format!("{prefix}site_id"), &asset.site_id)?;
    if !asset.parent_id.is_empty() {
        validate::id(&format!("{prefix}parent_id"), &asset.parent_id)?;
        if asset.parent_id == asset.id {
            return Err(RegistryError::invalid(
                format!("{prefix}parent_id"),
                "an asset cannot be its own parent",
            ));
        }
    }
    validate::required(&format!("{prefix}name"), &asset.name)?;
    if asset.criticality.is_empty() {
        "medium".clone_into(&mut asset.criticality);
    }
    let criticality = validate::criticality(&format!("{prefix}criticality"), &asset.criticality)?;
    criticality.clone_into(&mut asset.criticality);
    asset.attributes_json =
        validate::attributes(&format!("{prefix}attributes_json"), &asset.attributes_json)?;
    Ok(asset)
}

/// Check what the asset refers to: its site, and a parent in the same site that is not
/// below the asset itself.
async fn check_references(
    conn: &mut AnyConnection,
    asset: &Asset,
    prefix: &str,
) -> Result<(), RegistryError> {
    if sites::find(conn, &asset.site_id).await?.is_none() {
        return Err(RegistryError::invalid(
            format!("{prefix}site_id"),
            format!("no site {:?}", asset.site_id),
        ));
    }
    if asset.parent_id.is_empty() {
        return Ok(());
    }
    let Some(parent) = find(conn, &asset.parent_id).await? else {
        return Err(RegistryError::invalid(
            format!("{prefix}parent_id"),
            format!("no asset {:?}", asset.parent_id),
        ));
    };
    if parent.site_id != asset.site_id {
        return Err(RegistryError::invalid(
            format!("{prefix}parent_id"),
            format!(
                "asset {:?} is in site {:?}, not {:?}",
                parent.id, parent.site_id, asset.site_id
            ),
        ));
    }
    // Limitation: cycles are refused here, in the writing transaction, not by the schema;
    // two concurrent moves on PostgreSQL (read committed) could still close one, which
    // lookups survive only because they stop at MAX_DEPTH.
    let ancestors = ancestry_ids(conn, &parent.id).await?;
    // The walk stops after MAX_DEPTH levels; a chain that long is refused outright, so a
    // cycle can never hide beyond the part of the chain that was looked at.
    if i64::try_from(ancestors.len()).unwrap_or(i64::MAX) >= MAX_DEPTH {
        return Err(RegistryError::invalid(
            format!("{prefix}parent_id"),
            format!(
                "asset {:?} is {} or more levels deep; the hierarchy may be at most \
                 {MAX_DEPTH} levels deep",
                parent.id,
                ancestors.len()
            ),
        ));
    }
    if ancestors.iter().any(|id| id == &asset.id) {
        return Err(RegistryError::invalid(
            format!("{prefix}parent_id"),
            format!(
                "asset {:?} is below {:?}: that would make a cycle",
                parent.id, asset.id
            ),
        ));
    }
    Ok(())
}

/// The ids from `id` up to the top of its hierarchy, `id` first.
pub(crate) async fn ancestry_ids(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Vec<String>, RegistryError> {
    let rows = sqlx::query(
        "WITH RECURSIVE chain (id, parent_id, depth) AS ( \
           SELECT id, parent_id, 0 FROM assets WHERE id = $1 \
           UNION ALL \
           SELECT a.id, a.parent_id, c.depth + 1 FROM assets a \
             JOIN chain c ON a.id = c.parent_id WHERE c.depth < $2 \
         ) SELECT id FROM chain ORDER BY depth",
    )
    .bind(id)
    .bind(MAX_DEPTH)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()?)
}

pub(crate) async fn find(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Asset>, RegistryError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM assets WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

fn write_error(error: sqlx::Error, asset: &Asset) -> RegistryError {
    if is_unique_violation(&error) {
        RegistryError::AlreadyExists {
            kind: "asset",
            id: asset.id.clone(),
            detail: if asset.external_id.is_empty() {
                String::new()
            } else {
                format!(
                    " (or another asset has external_id {:?})",
                    asset.external_id
                )
            },
        }
    } else if is_foreign_key_violation(&error) {
        RegistryError::Conflict(format!(
            "asset {:?} has child assets in another site; move them first",
            asset.id
        ))
    } else {
        error.into()
    }
}

async fn insert(conn: &mut AnyConnection, asset: &Asset, now: i64) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO assets (id, site_id, parent_id, name, level, external_id, criticality, \
         owner_team, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&asset.id)
    .bind(&asset.site_id)
    .bind((!asset.parent_id.is_empty()).then_some(asset.parent_id.as_str()))
    .bind(&asset.name)
    .bind(&asset.level)
    .bind(&asset.external_id)
    .bind(&asset.criticality)
    .bind(&asset.owner_team)
    .bind(&asset.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| write_error(error, asset))?;
    Ok(())
}

async fn write(conn: &mut AnyConnection, asset: &Asset, now: i64) -> Result<(), RegistryError> {
    sqlx::query(
        "UPDATE assets SET site_id = $2, parent_id = $3, name = $4, level = $5, \
         external_id = $6, criticality = $7, owner_team = $8, attributes = $9, \
         updated_at = $10 WHERE id = $1",
    )
    .bind(&asset.id)
    .bind(&asset.site_id)
    .bind((!asset.parent_id.is_empty()).then_some(asset.parent_id.as_str()))
    .bind(&asset.name)
    .bind(&asset.level)
    .bind(&asset.external_id)
    .bind(&asset.criticality)
    .bind(&asset.owner_team)
    .bind(&asset.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| write_error(error, asset))?;
    Ok(())
}

/// Set the fields of `asset` that `mask` names from `patch`.
fn merge(asset: &mut Asset, patch: &Asset, mask: &UpdateMask) {
    mask.apply("site_id", &mut asset.site_id, &patch.site_id);
    mask.apply("parent_id", &mut asset.parent_id, &patch.parent_id);
    mask.apply("name", &mut asset.name, &patch.name);
    mask.apply("level", &mut asset.level, &patch.level);
    mask.apply("external_id", &mut asset.external_id, &patch.external_id);
    mask.apply("criticality", &mut asset.criticality, &patch.criticality);
    mask.apply("owner_team", &mut asset.owner_team, &patch.owner_team);
    mask.apply(
        "attributes_json",
        &mut asset.attributes_json,
        &patch.attributes_json,
    );
}

/// Create the asset from `patch`, or change the fields `mask` names of the existing one
/// (an import row: its columns are the mask).
pub(crate) async fn put(
    conn: &mut AnyConnection,
    patch: Asset,
    mask: &UpdateMask,
    now: i64,
) -> Result<Asset, RegistryError> {
    validate::id("id", &patch.id)?;
    let existing = find(conn, &patch.id).await?;
    let exists = existing.is_some();
    let asset = match existing {
        Some(mut asset) => {
            merge(&mut asset, &patch, mask);
            asset
        }
        None => patch,
    };
    let asset = checked(asset, "")?;
    check_references(conn, &asset, "").await?;
    if exists {
        write(conn, &asset, now).await?;
    } else {
        insert(conn, &asset, now).await?;
    }
    Ok(asset)
}

/// Filters of [`Registry::list_assets`]; empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct AssetFilter {
    pub site_id: String,
    pub parent_id: String,
    pub criticality: String,
    pub owner_team: String,
    pub name_contains: String,
}

impl Registry {
    /// Create an asset below its site, or below a parent asset of the same site.
    pub async fn create_asset(&self, asset: Asset) -> Result<Asset, RegistryError> {
        let asset = checked(asset, "asset.")?;
        let mut tx = self.pool().begin().await?;
        if find(&mut tx, &asset.id).await?.is_some() {
            return Err(RegistryError::AlreadyExists {
                kind: "asset",
                id: asset.id,
                detail: String::new(),
            });
        }
        check_references(&mut tx, &asset, "asset.").await?;
        insert(&mut tx, &asset, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("asset:{}", asset.id)]));
        self.get_asset(&asset.id).await
    }

    pub async fn get_asset(&self, id: &str) -> Result<Asset, RegistryError> {
        let mut conn = self.pool().acquire().await?;
        find(&mut conn, id)
            .await?
            .ok_or_else(|| RegistryError::not_found("asset", id))
    }

    /// Assets by id, filtered.
    pub async fn list_assets(
        &self,
        page: &PageRequest,
        filter: &AssetFilter,
    ) -> Result<Page<Asset>, RegistryError> {
        let criticality = if filter.criticality.is_empty() {
            ""
        } else {
            validate::criticality("criticality", &filter.criticality)?
        };
        let pattern = like_pattern(&filter.name_contains);
        let scope = ListScope::new(
            "assets",
            &[
                &filter.site_id,
                &filter.parent_id,
                criticality,
                &filter.owner_team,
                &pattern,
            ],
        );
        let after = page.after_in(scope)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM assets WHERE id > $1 \
             AND ($2 = '' OR site_id = $2) AND ($3 = '' OR parent_id = $3) \
             AND ($4 = '' OR criticality = $4) AND ($5 = '' OR owner_team = $5) \
             AND ($6 = '' OR LOWER(name) LIKE $6 ESCAPE '\\') ORDER BY id LIMIT $7"
        ))
        .bind(after)
        .bind(&filter.site_id)
        .bind(&filter.parent_id)
        .bind(criticality)
        .bind(&filter.owner_team)
        .bind(&pattern)
        .bind(page.size + 1)
        .fetch_all(self.pool())
        .await?;
        let assets = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(assets, page.size, scope, |asset| &asset.id))
    }

    /// Change the fields of `patch` that `mask` names; moving an asset checks the new
    /// parent and site.
    pub async fn update_asset(
        &self,
        patch: Asset,
        mask: &UpdateMask,
    ) -> Result<Asset, RegistryError> {
        validate::id("asset.id", &patch.id)?;
        let mut tx = self.pool().begin().await?;
        let mut asset = find(&mut tx, &patch.id)
            .await?
            .ok_or_else(|| RegistryError::not_found("asset", &patch.id))?;
        merge(&mut asset, &patch, mask);
        let asset = checked(asset, "asset.")?;
        check_references(&mut tx, &asset, "asset.").await?;
        write(&mut tx, &asset, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("asset:{}", asset.id)]));
        self.get_asset(&asset.id).await
    }

    /// Delete an asset: its work orders go with it, its devices become unbound; refused
    /// while child assets are below it.
    pub async fn delete_asset(&self, id: &str) -> Result<(), RegistryError> {
        let result = sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|error| {
                if is_foreign_key_violation(&error) {
                    RegistryError::Conflict(format!(
                        "asset {id:?} still has child assets; delete or move them first"
                    ))
                } else {
                    error.into()
                }
            })?;
        if result.rows_affected() == 0 {
            return Err(RegistryError::not_found("asset", id));
        }
        self.changed(Some(&[format!("asset:{id}")]));
        Ok(())
    }
}
