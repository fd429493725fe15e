//! Work orders: maintenance jobs on an asset, open or closed, with the CMMS's own id.

use sinter_proto::context::v1::WorkOrder;
use sinter_proto::context::v1::work_order::Status;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::paging::{ListScope, Page, PageRequest};
use super::{Registry, assets, timestamp, validate};
use crate::error::{RegistryError, is_unique_violation};
use crate::mask::UpdateMask;

/// Fields of a work order an update may change.
pub const WORK_ORDER_FIELDS: [&str; 4] = ["asset_id", "external_id", "title", "status"];

const COLUMNS: &str = "id, asset_id, external_id, title, status, created_at, updated_at";

/// The stored name of a status.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Closed => "closed",
        Status::Open | Status::Unspecified => "open",
    }
}

/// A status from its stored or written name.
pub fn parse_status(name: &str) -> Option<Status> {
    match name.to_ascii_lowercase().as_str() {
        "open" | "status_open" => Some(Status::Open),
        "closed" | "status_closed" => Some(Status::Closed),
        _ => None,
    }
}

fn from_row(row: &AnyRow) -> Result<WorkOrder, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(WorkOrder {
        id: row.try_get("id")?,
        asset_id: row.try_get("asset_id")?,
        external_id: row.try_get("external_id")?,
        title: row.try_get("title")?,
        status: parse_status(&status).unwrap_or(Status::Unspecified) as i32,
        created_at: timestamp(row.try_get("created_at")?),
        updated_at: timestamp(row.try_get("updated_at")?),
    })
}

/// Check a work order; an unspecified status on creation means open.
pub(crate) fn checked(mut order: WorkOrder, prefix: &str) -> Result<WorkOrder, RegistryError> {
    validate::id(&format!("{prefix}id"), &order.id)?;
    validate::id(&format!("{prefix}asset_id"), &order.asset_id)?;
    validate::required(&format!("{prefix}title"), &order.title)?;
    match Status::try_from(order.status) {
        Ok(Status::Unspecified) => order.status = Status::Open as i32,
        Ok(_) => {}
        Err(_) => {
            return Err(RegistryError::invalid(
                format!("{prefix}status"),
                format!("{} is not a work order status", order.status),
            ));
        }
    }
    Ok(order)
}

async fn check_references(
    conn: &mut AnyConnection,
    order: &WorkOrder,
    prefix: &str,
) -> Result<(), RegistryError> {
    if assets::find(conn, &order.asset_id).await?.is_none() {
        return Err(RegistryError::invalid(
            format!("{prefix}asset_id"),
            format!("no asset {:?}", order.asset_id),
        ));
    }
    Ok(())
}

pub(crate) async fn find(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<WorkOrder>, RegistryError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM work_orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

fn write_error(error: sqlx::Error, order: &WorkOrder) -> RegistryError {
    if is_unique_violation(&error) {
        RegistryError::AlreadyExists {
            kind: "work order",
            id: order.id.clone(),
            detail: format!(
                " (or another work order has external_id {:?})",
                order.external_id
            ),
        }
    } else {
        error.into()
    }
}

fn stored_status(order: &WorkOrder) -> &'static str {
    status_name(Status::try_from(order.status).unwrap_or(Status::Open))
}

async fn insert(
    conn: &mut AnyConnection,
    order: &WorkOrder,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO work_orders (id, asset_id, external_id, title, status, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&order.id)
    .bind(&order.asset_id)
    .bind(&order.external_id)
    .bind(&order.title)
    .bind(stored_status(order))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| write_error(error, order))?;
    Ok(())
}

async fn write(conn: &mut AnyConnection, order: &WorkOrder, now: i64) -> Result<(), RegistryError> {
    sqlx::query(
        "UPDATE work_orders SET asset_id = $2, external_id = $3, title = $4, status = $5, \
         updated_at = $6 WHERE id = $1",
    )
    .bind(&order.id)
    .bind(&order.asset_id)
    .bind(&order.external_id)
    .bind(&order.title)
    .bind(stored_status(order))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| write_error(error, order))?;
    Ok(())
}

/// Create the work order from `patch`, or change the fields `mask` names of the existing
/// one (an import row: its columns are the mask). A named status must be open or closed.
pub(crate) async fn put(
    conn: &mut AnyConnection,
    patch: WorkOrder,
    mask: &UpdateMask,
    now: i64,
) -> Result<WorkOrder, RegistryError> {
    validate::id("id", &patch.id)?;
    let existing = find(conn, &patch.id).await?;
    let exists = existing.is_some();
    let order = match existing {
        Some(mut order) => {
            mask.apply("asset_id", &mut order.asset_id, &patch.asset_id);
            mask.apply("external_id", &mut order.external_id, &patch.external_id);
            mask.apply("title", &mut order.title, &patch.title);
            if mask.touches("status", patch.status != Status::Unspecified as i32) {
                order.status = patch.status;
            }
            order
        }
        None => patch,
    };
    let order = checked(order, "")?;
    check_references(conn, &order, "").await?;
    if exists {
        write(conn, &order, now).await?;
    } else {
        insert(conn, &order, now).await?;
    }
    Ok(order)
}

impl Registry {
    pub async fn create_work_order(&self, order: WorkOrder) -> Result<WorkOrder, RegistryError> {
        let order = checked(order, "work_order.")?;
        let mut tx = self.pool().begin().await?;
        if find(&mut tx, &order.id).await?.is_some() {
            return Err(RegistryError::AlreadyExists {
                kind: "work order",
                id: order.id,
                detail: String::new(),
            });
        }
        check_references(&mut tx, &order, "work_order.").await?;
        insert(&mut tx, &order, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("asset:{}", order.asset_id)]));
        self.get_work_order(&order.id).await
    }

    pub async fn get_work_order(&self, id: &str) -> Result<WorkOrder, RegistryError> {
        let mut conn = self.pool().acquire().await?;
        find(&mut conn, id)
            .await?
            .ok_or_else(|| RegistryError::not_found("work order", id))
    }

    /// Work orders by id, optionally of one asset and one status.
    pub async fn list_work_orders(
        &self,
        page: &PageRequest,
        asset_id: &str,
        status: Status,
    ) -> Result<Page<WorkOrder>, RegistryError> {
        let status = match status {
            Status::Unspecified => "",
            other => status_name(other),
        };
        let scope = ListScope::new("work_orders", &[asset_id, status]);
        let after = page.after_in(scope)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM work_orders WHERE id > $1 \
             AND ($2 = '' OR asset_id = $2) AND ($3 = '' OR status = $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(after)
        .bind(asset_id)
        .bind(status)
        .bind(page.size + 1)
        .fetch_all(self.pool())
        .await?;
        let orders = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(orders, page.size, scope, |order| &order.id))
    }

    /// Change the fields of `patch` that `mask` names (closing a work order is a
    /// status update).
    pub async fn update_work_order(
        &self,
        patch: WorkOrder,
        mask: &UpdateMask,
    ) -> Result<WorkOrder, RegistryError> {
        validate::id("work_order.id", &patch.id)?;
        let mut tx = self.pool().begin().await?;
        let mut order = find(&mut tx, &patch.id)
            .await?
            .ok_or_else(|| RegistryError::not_found("work order", &patch.id))?;
        let previous_asset = order.asset_id.clone();
        mask.apply("asset_id", &mut order.asset_id, &patch.asset_id);
        mask.apply("external_id", &mut order.external_id, &patch.external_id);
        mask.apply("title", &mut order.title, &patch.title);
        if mask.touches("status", patch.status != Status::Unspecified as i32) {
            if patch.status == Status::Unspecified as i32 {
                return Err(RegistryError::invalid(
                    "work_order.status",
                    "must be STATUS_OPEN or STATUS_CLOSED",
                ));
            }
            order.status = patch.status;
        }
        let order = checked(order, "work_order.")?;
        check_references(&mut tx, &order, "work_order.").await?;
        write(&mut tx, &order, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[
            format!("asset:{previous_asset}"),
            format!("asset:{}", order.asset_id),
        ]));
        self.get_work_order(&order.id).await
    }

    pub async fn delete_work_order(&self, id: &str) -> Result<(), RegistryError> {
        let mut tx = self.pool().begin().await?;
        let order = find(&mut tx, id)
            .await?
            .ok_or_else(|| RegistryError::not_found("work order", id))?;
        sqlx::query("DELETE FROM work_orders WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed(Some(&[format!("asset:{}", order.asset_id)]));
        Ok(())
    }
}
