//! Sites: the top of every asset hierarchy.

use sinter_proto::context::v1::Site;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::paging::{ListScope, Page, PageRequest, like_pattern};
use super::{Registry, timestamp, validate};
use crate::error::{RegistryError, is_foreign_key_violation, is_unique_violation};
use crate::mask::UpdateMask;

/// Fields of a site an update may change.
pub const SITE_FIELDS: [&str; 3] = ["name", "timezone", "attributes_json"];

const COLUMNS: &str = "id, name, timezone, attributes, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Site, sqlx::Error> {
    Ok(Site {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        timezone: row.try_get("timezone")?,
        attributes_json: row.try_get("attributes")?,
        created_at: timestamp(row.try_get("created_at")?),
        updated_at: timestamp(row.try_get("updated_at")?),
    })
}

/// Check a site and put it in stored form.
pub(crate) fn checked(mut site: Site, prefix: &str) -> Result<Site, RegistryError> {
    validate::id(&format!("{prefix}id"), &site.id)?;
    validate::required(&format!("{prefix}name"), &site.name)?;
    validate::timezone(&format!("{prefix}timezone"), &site.timezone)?;
    site.attributes_json =
        validate::attributes(&format!("{prefix}attributes_json"), &site.attributes_json)?;
    Ok(site)
}

pub(crate) async fn find(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Site>, RegistryError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sites WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

pub(crate) async fn insert(
    conn: &mut AnyConnection,
    site: &Site,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO sites (id, name, timezone, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&site.id)
    .bind(&site.name)
    .bind(&site.timezone)
    .bind(&site.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            RegistryError::AlreadyExists {
                kind: "site",
                id: site.id.clone(),
                detail: String::new(),
            }
        } else {
            error.into()
        }
    })?;
    Ok(())
}

pub(crate) async fn write(
    conn: &mut AnyConnection,
    site: &Site,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "UPDATE sites SET name = $2, timezone = $3, attributes = $4, updated_at = $5 \
         WHERE id = $1",
    )
    .bind(&site.id)
    .bind(&site.name)
    .bind(&site.timezone)
    .bind(&site.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Set the fields of `site` that `mask` names from `patch`.
fn merge(site: &mut Site, patch: &Site, mask: &UpdateMask) {
    mask.apply("name", &mut site.name, &patch.name);
    mask.apply("timezone", &mut site.timezone, &patch.timezone);
    mask.apply(
        "attributes_json",
        &mut site.attributes_json,
        &patch.attributes_json,
    );
}

/// Create the site from `patch`, or change the fields `mask` names of the existing one
/// (an import row: its columns are the mask).
pub(crate) async fn put(
    conn: &mut AnyConnection,
    patch: Site,
    mask: &UpdateMask,
    now: i64,
) -> Result<Site, RegistryError> {
    validate::id("id", &patch.id)?;
    let Some(mut site) = find(conn, &patch.id).await? else {
        let site = checked(patch, "")?;
        insert(conn, &site, now).await?;
        return Ok(site);
    };
    merge(&mut site, &patch, mask);
    let site = checked(site, "")?;
    write(conn, &site, now).await?;
    Ok(site)
}

impl Registry {
    /// Create a site; its id must be new.
    pub async fn create_site(&self, site: Site) -> Result<Site, RegistryError> {
        let site = checked(site, "site.")?;
        let mut conn = self.pool().acquire().await?;
        insert(&mut conn, &site, self.now()).await?;
        self.changed(Some(&[format!("site:{}", site.id)]));
        self.get_site(&site.id).await
    }

    pub async fn get_site(&self, id: &str) -> Result<Site, RegistryError> {
        let mut conn = self.pool().acquire().await?;
        find(&mut conn, id)
            .await?
            .ok_or_else(|| RegistryError::not_found("site", id))
    }

    /// Sites by id, optionally only those whose name contains `name_contains`
    /// (case-insensitive).
    pub async fn list_sites(
        &self,
        page: &PageRequest,
        name_contains: &str,
    ) -> Result<Page<Site>, RegistryError> {
        let pattern = like_pattern(name_contains);
        let scope = ListScope::new("sites", &[&pattern]);
        let after = page.after_in(scope)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sites WHERE id > $1 \
             AND ($2 = '' OR LOWER(name) LIKE $2 ESCAPE '\\') ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(&pattern)
        .bind(page.size + 1)
        .fetch_all(self.pool())
        .await?;
        let sites = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(sites, page.size, scope, |site| &site.id))
    }

    /// Change the fields of `patch` that `mask` names.
    pub async fn update_site(&self, patch: Site, mask: &UpdateMask) -> Result<Site, RegistryError> {
        validate::id("site.id", &patch.id)?;
        let mut tx = self.pool().begin().await?;
        let mut site = find(&mut tx, &patch.id)
            .await?
            .ok_or_else(|| RegistryError::not_found("site", &patch.id))?;
        merge(&mut site, &patch, mask);
        let site = checked(site, "site.")?;
        write(&mut tx, &site, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("site:{}", site.id)]));
        self.get_site(&site.id).await
    }

    /// Delete a site; refused while assets are in it.
    pub async fn delete_site(&self, id: &str) -> Result<(), RegistryError> {
        let result = sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|error| {
                if is_foreign_key_violation(&error) {
                    RegistryError::Conflict(format!(
                        "site {id:?} still has assets; delete or move them first"
                    ))
                } else {
                    error.into()
                }
            })?;
        if result.rows_affected() == 0 {
            return Err(RegistryError::not_found("site", id));
        }
        self.changed(Some(&[format!("site:{id}")]));
        Ok(())
    }
}
