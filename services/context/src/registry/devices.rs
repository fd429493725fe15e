//! Devices: what sends readings, each bound to one asset at most.

use sinter_proto::context::v1::Device;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::paging::{ListScope, Page, PageRequest};
use super::{Registry, assets, timestamp, validate};
use crate::error::{RegistryError, is_unique_violation};
use crate::mask::UpdateMask;

/// Fields of a device an update may change; `asset_id` empty unbinds it.
pub const DEVICE_FIELDS: [&str; 3] = ["asset_id", "device_type", "attributes_json"];

const COLUMNS: &str = "id, asset_id, device_type, attributes, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        id: row.try_get("id")?,
        asset_id: row
            .try_get::<Option<String>, _>("asset_id")?
            .unwrap_or_default(),
        device_type: row.try_get("device_type")?,
        attributes_json: row.try_get("attributes")?,
        created_at: timestamp(row.try_get("created_at")?),
        updated_at: timestamp(row.try_get("updated_at")?),
    })
}

pub(crate) fn checked(mut device: Device, prefix: &str) -> Result<Device, RegistryError> {
    validate::id(&format!("{prefix}id"), &device.id)?;
    if !device.asset_id.is_empty() {
        validate::id(&format!("{prefix}asset_id"), &device.asset_id)?;
    }
    device.attributes_json =
        validate::attributes(&format!("{prefix}attributes_json"), &device.attributes_json)?;
    Ok(device)
}

async fn check_references(
    conn: &mut AnyConnection,
    device: &Device,
    prefix: &str,
) -> Result<(), RegistryError> {
    if !device.asset_id.is_empty() && assets::find(conn, &device.asset_id).await?.is_none() {
        return Err(RegistryError::invalid(
            format!("{prefix}asset_id"),
            format!("no asset {:?}", device.asset_id),
        ));
    }
    Ok(())
}

pub(crate) async fn find(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Device>, RegistryError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM devices WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

fn asset_binding(device: &Device) -> Option<&str> {
    (!device.asset_id.is_empty()).then_some(device.asset_id.as_str())
}

async fn insert(conn: &mut AnyConnection, device: &Device, now: i64) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO devices (id, asset_id, device_type, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&device.id)
    .bind(asset_binding(device))
    .bind(&device.device_type)
    .bind(&device.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|error| {
        if is_unique_violation(&error) {
            RegistryError::AlreadyExists {
                kind: "device",
                id: device.id.clone(),
                detail: String::new(),
            }
        } else {
            error.into()
        }
    })?;
    Ok(())
}

async fn write(conn: &mut AnyConnection, device: &Device, now: i64) -> Result<(), RegistryError> {
    sqlx::query(
        "UPDATE devices SET asset_id = $2, device_type = $3, attributes = $4, updated_at = $5 \
         WHERE id = $1",
    )
    .bind(&device.id)
    .bind(asset_binding(device))
    .bind(&device.device_type)
    .bind(&device.attributes_json)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Set the fields of `device` that `mask` names from `patch`.
fn merge(device: &mut Device, patch: &Device, mask: &UpdateMask) {
    mask.apply("asset_id", &mut device.asset_id, &patch.asset_id);
    mask.apply("device_type", &mut device.device_type, &patch.device_type);
    mask.apply(
        "attributes_json",
        &mut device.attributes_json,
        &patch.attributes_json,
    );
}

/// Create the device from `patch`, or change the fields `mask` names of the existing one
/// (an import row: its columns are the mask).
pub(crate) async fn put(
    conn: &mut AnyConnection,
    patch: Device,
    mask: &UpdateMask,
    now: i64,
) -> Result<Device, RegistryError> {
    validate::id("id", &patch.id)?;
    let existing = find(conn, &patch.id).await?;
    let exists = existing.is_some();
    let device = match existing {
        Some(mut device) => {
            merge(&mut device, &patch, mask);
            device
        }
        None => patch,
    };
    let device = checked(device, "")?;
    check_references(conn, &device, "").await?;
    if exists {
        write(conn, &device, now).await?;
    } else {
        insert(conn, &device, now).await?;
    }
    Ok(device)
}

impl Registry {
    /// Register a device, bound to an asset or not.
    pub async fn create_device(&self, device: Device) -> Result<Device, RegistryError> {
        let device = checked(device, "device.")?;
        let mut tx = self.pool().begin().await?;
        if find(&mut tx, &device.id).await?.is_some() {
            return Err(RegistryError::AlreadyExists {
                kind: "device",
                id: device.id,
                detail: String::new(),
            });
        }
        check_references(&mut tx, &device, "device.").await?;
        insert(&mut tx, &device, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("device:{}", device.id)]));
        self.get_device(&device.id).await
    }

    pub async fn get_device(&self, id: &str) -> Result<Device, RegistryError> {
        let mut conn = self.pool().acquire().await?;
        find(&mut conn, id)
            .await?
            .ok_or_else(|| RegistryError::not_found("device", id))
    }

    /// Devices by id, optionally of one asset and one device type.
    pub async fn list_devices(
        &self,
        page: &PageRequest,
        asset_id: &str,
        device_type: &str,
    ) -> Result<Page<Device>, RegistryError> {
        let scope = ListScope::new("devices", &[asset_id, device_type]);
        let after = page.after_in(scope)?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM devices WHERE id > $1 \
             AND ($2 = '' OR asset_id = $2) AND ($3 = '' OR device_type = $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(after)
        .bind(asset_id)
        .bind(device_type)
        .bind(page.size + 1)
        .fetch_all(self.pool())
        .await?;
        let devices = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(devices, page.size, scope, |device| {
            &device.id
        }))
    }

    /// Change the fields of `patch` that `mask` names; naming `asset_id` rebinds (or,
    /// empty, unbinds) the device.
    pub async fn update_device(
        &self,
        patch: Device,
        mask: &UpdateMask,
    ) -> Result<Device, RegistryError> {
        validate::id("device.id", &patch.id)?;
        let mut tx = self.pool().begin().await?;
        let mut device = find(&mut tx, &patch.id)
            .await?
            .ok_or_else(|| RegistryError::not_found("device", &patch.id))?;
        merge(&mut device, &patch, mask);
        let device = checked(device, "device.")?;
        check_references(&mut tx, &device, "device.").await?;
        write(&mut tx, &device, self.now()).await?;
        tx.commit().await?;
        self.changed(Some(&[format!("device:{}", device.id)]));
        self.get_device(&device.id).await
    }

    pub async fn delete_device(&self, id: &str) -> Result<(), RegistryError> {
        let result = sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if result.rows_affected() == 0 {
            return Err(RegistryError::not_found("device", id));
        }
        self.changed(Some(&[format!("device:{id}")]));
        Ok(())
    }
}
