//! Refresh tokens: one row per token plus a family index for revocation. Using a token is a
//! lightweight transaction (`UPDATE … IF used = false AND revoked = false`), so two racing
//! refreshes cannot both win; revocation is a plain write of another column.

use scylla::statement::batch::BatchType;
use scylla::value::CqlTimestamp;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::model::RefreshTokenRecord;
use crate::store::StoreResult;

/// A `refresh_tokens` row, in [`super::statements::TOKEN_COLUMNS`] order.
type TokenRow = (String, i64, String, CqlTimestamp, bool, bool);

impl Cql {
    /// `put_refresh_token`: the token and its family entry in one batch (moving it out of a
    /// previous family if the id is reused).
    pub(crate) async fn put_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        let old = self.refresh_token(&token.id).await?;
        let mut entries: Vec<super::BatchEntry<'_>> = vec![
            (
                &self.st.token_insert,
                Box::new((
                    token.id.clone(),
                    id(token.user_id)?,
                    token.family_id.clone(),
                    to_cql_time(token.expires_at),
                    token.used,
                    token.revoked,
                )),
            ),
            (
                &self.st.family_insert,
                Box::new((token.family_id.clone(), token.id.clone())),
            ),
        ];
        if let Some(old) = old.filter(|old| old.family_id != token.family_id) {
            entries.push((&self.st.family_delete, Box::new((old.family_id, old.id))));
        }
        self.batch("write refresh token", BatchType::Logged, entries)
            .await
    }

    /// `refresh_token`.
    pub(crate) async fn refresh_token(
        &self,
        token_id: &str,
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let row: Option<TokenRow> = self
            .first("read refresh token", &self.st.token_get, (token_id,))
            .await?;
        row.map(|(id, user_id, family_id, expires_at, used, revoked)| {
            Ok(RefreshTokenRecord {
                id,
                user_id: snowflake(user_id)?,
                family_id,
                expires_at: from_cql_time(expires_at),
                used,
                revoked,
            })
        })
        .transpose()
    }

    /// `use_refresh_token`: the compare-and-set; `false` for unknown, used or revoked tokens.
    pub(crate) async fn use_refresh_token(&self, token_id: &str) -> StoreResult<bool> {
        Ok(self
            .lwt("use refresh token", &self.st.token_use, (token_id,))
            .await?
            .applied)
    }

    /// `revoke_refresh_family`: marks every token still in the family revoked.
    pub(crate) async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        let ids: Vec<(String,)> = self
            .select_all("read token family", &self.st.family_tokens, (family_id,))
            .await?;
        for (token_id,) in ids {
            let Some(token) = self.refresh_token(&token_id).await? else {
                continue;
            };
            if token.family_id == family_id && !token.revoked {
                self.write("revoke refresh token", &self.st.token_revoke, (token_id,))
                    .await?;
            }
        }
        Ok(())
    }
}
