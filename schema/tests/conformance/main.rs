//! The storage conformance suite: the same test functions run against every [`Store`]
//! backend. Each case in `cases` is run once against a fresh embedded store (always) and once
//! against the CQL backend in a fresh keyspace on the server named by `VOICEFLOW_TEST_CQL`
//! (skipped, loudly, only when that variable is unset). Test names say which:
//! `embedded::<case>` and `cql::<case>`.
//!
//! A case gets a [`Backend`] and opens stores from it; opening again after dropping every
//! handle is a "reopen" (the same directory, or the same keyspace through a new session).

mod communities;
mod community_parts;
mod contacts;
mod events;
mod fencing;
mod harness;
mod join_requests;
mod member_names;
mod messages;
mod notify;
mod push;
mod rooms;
mod tokens;
mod users;

pub use harness::{Backend, ids, member, message, room, token, user};

/// Declares every case of the suite once per backend.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    crate::harness::run_embedded(crate::$module::$case).await;
                }
            )*
        }
        mod cql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    crate::harness::run_cql(stringify!($case), crate::$module::$case).await;
                }
            )*
        }
    };
}

conformance!(
    users::create_and_look_up_case_insensitively,
    users::create_conflicts_on_username_then_email,
    users::concurrent_conflicting_creates_have_one_winner,
    users::update_moves_username_and_email_and_detects_conflicts,
    rooms::create_look_up_update_and_delete_a_room,
    rooms::public_listing_pages_newest_first_with_exact_total,
    rooms::memberships_in_both_directions,
    messages::pages_back_through_250_messages_without_gaps,
    messages::history_crosses_bucket_boundaries_and_stops_at_the_room,
    messages::sparse_history_walks_many_buckets_both_ways,
    messages::nonce_lookup_and_tombstones,
    messages::one_call_appends_to_several_rooms_and_large_batches,
    messages::concurrent_appends_are_all_stored_and_survive_a_reopen,
    tokens::refresh_tokens_are_used_once_and_revoked_by_family,
    tokens::racing_refreshes_have_one_winner,
    tokens::reopen_keeps_everything,
    events::room_log_appends_reads_after_any_seq_and_survives_a_reopen,
    events::read_markers_per_user_and_room,
    fencing::a_stale_owner_is_fenced_and_its_writes_are_never_read,
    fencing::concurrent_claims_get_distinct_epochs,
    fencing::the_end_read_after_a_claim_is_the_fenced_end,
    contacts::blocks_are_per_pair_idempotent_and_survive_a_reopen,
    contacts::user_settings_replace_and_survive_a_reopen,
    communities::create_update_and_delete_a_community_with_its_roles_and_members,
    communities::roles_are_replaced_listed_and_deleted_without_rewriting_members,
    communities::members_page_by_user_and_survive_a_reopen,
    community_parts::invites_are_unique_counted_once_per_use_and_go_with_their_community,
    community_parts::the_audit_log_pages_newest_first_and_goes_with_its_community,
    community_parts::a_ban_ends_the_membership_and_is_paged_and_lifted,
    community_parts::channels_and_their_overrides_are_placed_listed_and_removed,
    community_parts::categories_are_listed_replaced_and_removed_leaving_their_channels,
    join_requests::join_requests_are_paged_taken_once_and_go_with_their_community,
    member_names::member_names_are_searched_by_prefix_and_follow_the_members,
    notify::mentions_are_indexed_with_their_messages_newest_first,
    notify::notification_settings_per_scope_replace_and_survive_a_reopen,
    notify::mention_rows_are_put_deleted_and_trimmed_to_the_newest,
    push::vapid_keys_are_created_once_and_shared,
    push::push_devices_are_kept_per_user_by_endpoint,
);
