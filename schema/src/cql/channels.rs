//! Channels of communities (`community_channels` by community, `channel_communities` back
//! from a channel), their overrides (`channel_overwrites`, one partition per channel) and
//! their categories (`community_categories`, one partition per community).

use scylla::client::session::Session;
use scylla::statement::batch::BatchType;
use scylla::statement::prepared::PreparedStatement;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::permissions::{Overwrite, Permissions};

use super::codec::{id, snowflake};
use super::{BatchEntry, Cql};
use crate::community::{CategoryRecord, ChannelOverwriteRecord, ChannelRecord, OverwriteTarget};
use crate::store::{StoreError, StoreResult};

/// The statements of this module.
pub(crate) struct ChannelStatements {
    put: PreparedStatement,
    link: PreparedStatement,
    delete: PreparedStatement,
    unlink: PreparedStatement,
    of_community: PreparedStatement,
    community_of: PreparedStatement,
    overwrite_put: PreparedStatement,
    overwrite_delete: PreparedStatement,
    overwrites_delete: PreparedStatement,
    overwrites_of: PreparedStatement,
    category_put: PreparedStatement,
    category_delete: PreparedStatement,
    categories_delete: PreparedStatement,
    categories_of: PreparedStatement,
}

impl ChannelStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<ChannelStatements> {
        let p = |cql: &'static str| super::codec::prepare(session, cql, true);
        Ok(ChannelStatements {
            put: p(
                "INSERT INTO community_channels (community_id, channel_id, category_id, \
                 position) VALUES (?, ?, ?, ?)",
            )
            .await?,
            link: p("INSERT INTO channel_communities (channel_id, community_id) VALUES (?, ?)")
                .await?,
            delete: p("DELETE FROM community_channels WHERE community_id = ? AND channel_id = ?")
                .await?,
            unlink: p("DELETE FROM channel_communities WHERE channel_id = ?").await?,
            of_community: p(
                "SELECT channel_id, category_id, position FROM community_channels \
                 WHERE community_id = ?",
            )
            .await?,
            community_of: p("SELECT community_id FROM channel_communities WHERE channel_id = ?")
                .await?,
            overwrite_put: p(
                "INSERT INTO channel_overwrites (channel_id, target_id, target, \
                 allow_bits, deny_bits) VALUES (?, ?, ?, ?, ?)",
            )
            .await?,
            overwrite_delete: p(
                "DELETE FROM channel_overwrites WHERE channel_id = ? AND target_id = ?",
            )
            .await?,
            overwrites_delete: p("DELETE FROM channel_overwrites WHERE channel_id = ?").await?,
            overwrites_of: p(
                "SELECT target_id, target, allow_bits, deny_bits FROM channel_overwrites \
                 WHERE channel_id = ?",
            )
            .await?,
            category_put: p(
                "INSERT INTO community_categories (community_id, category_id, name, position) \
                 VALUES (?, ?, ?, ?)",
            )
            .await?,
            category_delete: p(
                "DELETE FROM community_categories WHERE community_id = ? AND category_id = ?",
            )
            .await?,
            categories_delete: p("DELETE FROM community_categories WHERE community_id = ?").await?,
            categories_of: p(
                "SELECT category_id, name, position FROM community_categories \
                 WHERE community_id = ?",
            )
            .await?,
        })
    }
}

/// A row of `channel_overwrites`: target id, target kind, allow bits, deny bits.
type OverwriteRow = (i64, Option<String>, Option<i64>, Option<i64>);

fn bits(p: Permissions) -> i64 {
    i64::from_be_bytes(p.bits().to_be_bytes())
}

fn permissions(raw: Option<i64>) -> Permissions {
    Permissions::from_bits_retain(u64::from_be_bytes(raw.unwrap_or(0).to_be_bytes()))
}

impl Cql {
    /// `put_channel`: both directions in one logged batch.
    pub(crate) async fn put_channel(&self, channel: &ChannelRecord) -> StoreResult<()> {
        let (community, id_) = (id(channel.community_id)?, id(channel.channel_id)?);
        let values = (
            community,
            id_,
            channel.category_id.map(id).transpose()?,
            i64::from(channel.position),
        );
        let entries: Vec<BatchEntry<'_>> = vec![
            (&self.channels.put, Box::new(values)),
            (&self.channels.link, Box::new((id_, community))),
        ];
        self.batch("place channel", BatchType::Logged, entries)
            .await
    }

    /// `remove_channel`, with its overrides.
    pub(crate) async fn remove_channel(
        &self,
        community_id: Snowflake,
        channel_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(community), Ok(channel)) = (id(community_id), id(channel_id)) else {
            return Ok(());
        };
        let entries: Vec<BatchEntry<'_>> = vec![
            (&self.channels.delete, Box::new((community, channel))),
            (&self.channels.unlink, Box::new((channel,))),
            (&self.channels.overwrites_delete, Box::new((channel,))),
        ];
        self.batch("remove channel", BatchType::Logged, entries)
            .await
    }

    /// `community_channels`, by channel id.
    pub(crate) async fn community_channels(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<ChannelRecord>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = self
            .select_all("read channels", &self.channels.of_community, (community,))
            .await?;
        rows.into_iter()
            .map(|(channel, category, position)| {
                Ok(ChannelRecord {
                    community_id,
                    channel_id: snowflake(channel)?,
                    category_id: category.map(snowflake).transpose()?,
                    position: u32::try_from(position.unwrap_or(0)).map_err(|_| {
                        StoreError::Corrupt(format!("channel position {position:?}"))
                    })?,
                })
            })
            .collect()
    }

    /// `channel_community`.
    pub(crate) async fn channel_community(
        &self,
        channel_id: Snowflake,
    ) -> StoreResult<Option<Snowflake>> {
        let Ok(channel) = id(channel_id) else {
            return Ok(None);
        };
        let row: Option<(Option<i64>,)> = self
            .first(
                "read channel's community",
                &self.channels.community_of,
                (channel,),
            )
            .await?;
        row.and_then(|(community,)| community)
            .map(snowflake)
            .transpose()
    }

    /// `put_channel_overwrite`.
    pub(crate) async fn put_channel_overwrite(
        &self,
        o: &ChannelOverwriteRecord,
    ) -> StoreResult<()> {
        let values = (
            id(o.channel_id)?,
            id(o.target_id)?,
            o.target.as_str(),
            bits(o.overwrite.allow),
            bits(o.overwrite.deny),
        );
        self.write(
            "write channel override",
            &self.channels.overwrite_put,
            values,
        )
        .await
    }

    /// `remove_channel_overwrite`.
    pub(crate) async fn remove_channel_overwrite(
        &self,
        channel_id: Snowflake,
        target_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(channel), Ok(target)) = (id(channel_id), id(target_id)) else {
            return Ok(());
        };
        self.write(
            "delete channel override",
            &self.channels.overwrite_delete,
            (channel, target),
        )
        .await
    }

    /// `channel_overwrites`, by target id.
    pub(crate) async fn channel_overwrites(
        &self,
        channel_id: Snowflake,
    ) -> StoreResult<Vec<ChannelOverwriteRecord>> {
        let Ok(channel) = id(channel_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<OverwriteRow> = self
            .select_all(
                "read channel overrides",
                &self.channels.overwrites_of,
                (channel,),
            )
            .await?;
        rows.into_iter()
            .map(|(target_id, target, allow, deny)| {
                let name = target.unwrap_or_default();
                Ok(ChannelOverwriteRecord {
                    channel_id,
                    target_id: snowflake(target_id)?,
                    target: OverwriteTarget::parse(&name)
                        .ok_or_else(|| StoreError::Corrupt(format!("override target `{name}`")))?,
                    overwrite: Overwrite {
                        allow: permissions(allow),
                        deny: permissions(deny),
                    },
                })
            })
            .collect()
    }

    /// Takes every channel of a community out of it (with the community).
    pub(crate) async fn delete_community_channels(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<()> {
        for channel in self.community_channels(community_id).await? {
            self.remove_channel(community_id, channel.channel_id)
                .await?;
        }
        let Ok(community) = id(community_id) else {
            return Ok(());
        };
        self.write(
            "delete categories",
            &self.channels.categories_delete,
            (community,),
        )
        .await
    }

    /// `put_category`.
    pub(crate) async fn put_category(&self, category: &CategoryRecord) -> StoreResult<()> {
        let values = (
            id(category.community_id)?,
            id(category.id)?,
            category.name.as_str(),
            i64::from(category.position),
        );
        self.write("put category", &self.channels.category_put, values)
            .await
    }

    /// `remove_category`: its channels are moved out of it first (each an idempotent
    /// rewrite), then the category goes; a removal cut short is finished by trying again.
    pub(crate) async fn remove_category(
        &self,
        community_id: Snowflake,
        category_id: Snowflake,
    ) -> StoreResult<()> {
        let (Ok(community), Ok(category)) = (id(community_id), id(category_id)) else {
            return Ok(());
        };
        for mut channel in self.community_channels(community_id).await? {
            if channel.category_id == Some(category_id) {
                channel.category_id = None;
                self.put_channel(&channel).await?;
            }
        }
        self.write(
            "delete category",
            &self.channels.category_delete,
            (community, category),
        )
        .await
    }

    /// `community_categories`, by id.
    pub(crate) async fn community_categories(
        &self,
        community_id: Snowflake,
    ) -> StoreResult<Vec<CategoryRecord>> {
        let Ok(community) = id(community_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, Option<String>, Option<i64>)> = self
            .select_all(
                "read categories",
                &self.channels.categories_of,
                (community,),
            )
            .await?;
        rows.into_iter()
            .map(|(category, name, position)| {
                Ok(CategoryRecord {
                    community_id,
                    id: snowflake(category)?,
                    name: name.unwrap_or_default(),
                    position: u32::try_from(position.unwrap_or(0)).map_err(|_| {
                        StoreError::Corrupt(format!("category position {position:?}"))
                    })?,
                })
            })
            .collect()
    }
}
