//! The asset context of a device: its asset, the path from the site down, criticality,
//! owner, attributes and open work orders.

use sinter_proto::events::v1::{AssetContext, AssetRef, WorkOrderRef};
use sqlx::Row;

use super::Registry;
use super::assets::MAX_DEPTH;
use crate::error::RegistryError;

/// What the registry knows about a device.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceLookup {
    /// No such device.
    Unknown,
    /// The device is registered but bound to no asset.
    Unbound,
    /// The device's asset and everything around it.
    Bound(Box<AssetContext>),
}

/// The registry records a lookup's result depends on, as the change notifications name
/// them: the device, every asset on the path and the site.
pub fn dependency_keys(device_id: &str, lookup: &DeviceLookup) -> Vec<String> {
    let mut keys = vec![format!("device:{device_id}")];
    if let DeviceLookup::Bound(context) = lookup {
        keys.push(format!("site:{}", context.site_id));
        for node in &context.path {
            if node.level != "site" {
                keys.push(format!("asset:{}", node.id));
            }
        }
    }
    keys
}

impl Registry {
    /// Look the device up, with its asset's whole context.
    ///
    /// Three queries on one connection, not one snapshot: a change committed between them
    /// can mix old and new, but it also invalidates the cache, so such a read is never
    /// cached (see `ContextCache::insert`).
    pub async fn device_context(&self, device_id: &str) -> Result<DeviceLookup, RegistryError> {
        let mut conn = self.pool().acquire().await?;
        let row = sqlx::query(
            "SELECT d.asset_id, a.name, a.external_id, a.criticality, a.owner_team, \
             a.attributes, a.site_id, s.name AS site_name \
             FROM devices d LEFT JOIN assets a ON a.id = d.asset_id \
             LEFT JOIN sites s ON s.id = a.site_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(DeviceLookup::Unknown);
        };
        let Some(asset_id) = row.try_get::<Option<String>, _>("asset_id")? else {
            return Ok(DeviceLookup::Unbound);
        };
        let site_id: String = row.try_get("site_id")?;
        let site_name: String = row.try_get("site_name")?;

        let chain = sqlx::query(
            "WITH RECURSIVE chain (id, parent_id, name, level, depth) AS ( \
               SELECT id, parent_id, name, level, 0 FROM assets WHERE id = $1 \
               UNION ALL \
               SELECT a.id, a.parent_id, a.name, a.level, c.depth + 1 FROM assets a \
                 JOIN chain c ON a.id = c.parent_id WHERE c.depth < $2 \
             ) SELECT id, name, level FROM chain ORDER BY depth DESC",
        )
        .bind(&asset_id)
        .bind(MAX_DEPTH)
        .fetch_all(&mut *conn)
        .await?;
        let mut path = Vec::with_capacity(chain.len() + 1);
        path.push(AssetRef {
            id: site_id.clone(),
            name: site_name.clone(),
            level: "site".to_owned(),
        });
        for node in &chain {
            path.push(AssetRef {
                id: node.try_get("id")?,
                name: node.try_get("name")?,
                level: node.try_get("level")?,
            });
        }

        let orders = sqlx::query(
            "SELECT id, external_id, title, status FROM work_orders \
             WHERE asset_id = $1 AND status = 'open' ORDER BY created_at, id",
        )
        .bind(&asset_id)
        .fetch_all(&mut *conn)
        .await?;
        let open_work_orders = orders
            .iter()
            .map(|order| {
                Ok(WorkOrderRef {
                    id: order.try_get("id")?,
                    external_id: order.try_get("external_id")?,
                    title: order.try_get("title")?,
                    status: order.try_get("status")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;

        Ok(DeviceLookup::Bound(Box::new(AssetContext {
            asset_id,
            asset_name: row.try_get("name")?,
            external_id: row.try_get("external_id")?,
            path,
            site_id,
            site_name,
            criticality: row.try_get("criticality")?,
            owner_team: row.try_get("owner_team")?,
            attributes_json: row.try_get("attributes")?,
            open_work_orders,
        })))
    }
}
