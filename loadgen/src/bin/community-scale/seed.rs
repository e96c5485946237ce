//! Seeding: one community of `members` users and `channels` channels written straight into
//! an embedded store (the node's `DATA_DIR/store`), many writes in flight so the store's
//! group commit shares fsyncs. What the measurements need is kept in `seeded.json`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use voiceflow_schema::{
    ChannelOverwriteRecord, ChannelRecord, CommunityMember, CommunityRecord, EmbeddedStore,
    Membership, OverwriteTarget, Role, RoleRecord, RoomRecord, RoomSettings, Store, UserRecord,
};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::{SnowflakeGenerator, now_ms};
use voiceflow_wire::room::RoomKind;
use voiceflow_wire::v1::permissions::{Overwrite, Permissions};

/// Writes in flight while seeding.
const IN_FLIGHT: usize = 512;
/// Every seeded account's password.
pub const PASSWORD: &str = "password123";
/// Roles besides `@everyone`.
const ROLES: usize = 10;

/// What the measurements need of the seeded data.
#[derive(Debug, Serialize, Deserialize)]
pub struct Seeded {
    pub community: Snowflake,
    /// The owner's email.
    pub owner: String,
    /// A member holding three roles (one of them `speakers`, the only grant of posting).
    pub member: String,
    pub member_id: Snowflake,
    /// The role that grants `send_messages`.
    pub speakers: Snowflake,
    /// Every channel.
    pub channels: Vec<Snowflake>,
    /// Channels whose room has every member as a member (as if all had used them).
    pub big: Vec<Snowflake>,
    /// Every member's user id, to page from random places.
    pub user_ids: Vec<Snowflake>,
    /// Seconds the seeding took.
    pub seed_secs: f64,
}

/// Syllables of generated usernames, so prefix searches hit realistic spreads.
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ba", "de", "fi", "go", "ha", "ju", "ko", "pe",
];

fn username(i: u32) -> String {
    let a = SYLLABLES[(i as usize * 7) % 16];
    let b = SYLLABLES[(i as usize / 16 * 5) % 16];
    format!("{a}{b}{i}")
}

/// The argon2id hash of [`PASSWORD`] (cheap parameters: logins are setup, not measured).
fn password_hash() -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(1024, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"community-scale!").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(argon
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

/// Seeds `store_dir` and returns what was seeded.
pub async fn seed(store_dir: &Path, members: u32, channels: u32, big: u32) -> Result<Seeded> {
    let started = Instant::now();
    let store = EmbeddedStore::open(store_dir).context("open store")?;
    let ids = SnowflakeGenerator::new(1023);
    let hash = password_hash()?;
    let now = now_ms();

    let users: Vec<UserRecord> = (0..members)
        .map(|i| UserRecord {
            id: ids.next_id(),
            username: username(i),
            email: format!("user{i}@example.com"),
            password_hash: hash.clone(),
            avatar_url: None,
            created_at: now,
        })
        .collect();
    stream::iter(users.iter())
        .map(|u| store.create_user(u))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    eprintln!("seed: {members} users in {:.1?}", started.elapsed());

    let owner = &users[0];
    let community = CommunityRecord {
        id: ids.next_id(),
        name: "Scale".into(),
        description: "a community of many".into(),
        icon: None,
        owner_id: owner.id,
        created_at: now,
        updated_at: now,
        require_approval: false,
    };
    // `@everyone` may view and react, not post: `speakers` grants posting.
    let everyone = RoleRecord {
        community_id: community.id,
        id: community.id,
        name: "@everyone".into(),
        color: 0,
        position: 0,
        permissions: Permissions::VIEW_CHANNEL | Permissions::ADD_REACTIONS | Permissions::CONNECT,
        created_at: now,
    };
    let member_of = |user: &UserRecord, roles: Vec<Snowflake>| CommunityMember {
        community_id: community.id,
        user_id: user.id,
        roles,
        timed_out_until: None,
        joined_at: now,
        voice_muted: false,
        voice_deafened: false,
    };
    store
        .create_community(&community, &everyone, &member_of(owner, Vec::new()))
        .await?;
    let roles: Vec<RoleRecord> = (0..ROLES)
        .map(|r| RoleRecord {
            community_id: community.id,
            id: ids.next_id(),
            name: format!("role {r}"),
            color: 0x0033_66ff,
            position: u32::try_from(r + 1).unwrap_or(1),
            permissions: match r {
                0 => Permissions::SEND_MESSAGES,
                _ => Permissions::ATTACH_FILES,
            },
            created_at: now,
        })
        .collect();
    for role in &roles {
        store.put_role(role).await?;
    }
    let speakers = roles[0].id;
    // Members: one in ten holds a role or two; member 1 (the measured one) holds three.
    stream::iter(users.iter().enumerate().skip(1))
        .map(|(i, u)| {
            let held = match i {
                1 => vec![roles[0].id, roles[1].id, roles[2].id],
                i if i % 10 == 0 => vec![roles[i / 10 % ROLES].id, roles[3].id],
                _ => Vec::new(),
            };
            let member = member_of(u, held);
            let store = &store;
            async move { store.put_community_member(&member).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    eprintln!("seed: members in {:.1?}", started.elapsed());

    let mut channel_ids = Vec::new();
    for c in 0..channels {
        let room = RoomRecord {
            id: ids.next_id(),
            name: format!("channel-{c}"),
            description: String::new(),
            max_users: 500,
            settings: RoomSettings {
                is_public: false,
                ..RoomSettings::default()
            },
            join_code: format!("SCALE{c:05}"),
            created_by: owner.id,
            created_at: now,
            updated_at: now,
            kind: RoomKind::Text,
            banned: Vec::new(),
        };
        let creator = Membership {
            room_id: room.id,
            user_id: owner.id,
            role: Role::Member,
            joined_at: now,
        };
        store.create_room(&room, &creator).await?;
        store
            .put_channel(&ChannelRecord {
                community_id: community.id,
                channel_id: room.id,
                category_id: None,
                position: c,
            })
            .await?;
        // One channel in ten is private to a role; one in five lets a role attach files.
        let overwrite = |target: Snowflake, overwrite: Overwrite| ChannelOverwriteRecord {
            channel_id: room.id,
            target_id: target,
            target: OverwriteTarget::Role,
            overwrite,
        };
        if c % 10 == 9 {
            let deny = Overwrite {
                allow: Permissions::empty(),
                deny: Permissions::VIEW_CHANNEL,
            };
            store
                .put_channel_overwrite(&overwrite(community.id, deny))
                .await?;
            let allow = Overwrite {
                allow: Permissions::VIEW_CHANNEL,
                deny: Permissions::empty(),
            };
            let role = roles[(c as usize / 10) % ROLES].id;
            store.put_channel_overwrite(&overwrite(role, allow)).await?;
        } else if c % 5 == 0 {
            let allow = Overwrite {
                allow: Permissions::ATTACH_FILES,
                deny: Permissions::empty(),
            };
            let role = roles[(c as usize / 5) % ROLES].id;
            store.put_channel_overwrite(&overwrite(role, allow)).await?;
        }
        channel_ids.push(room.id);
    }
    // The big channels: every member is a member of their room (they all used it once).
    let big_ids: Vec<Snowflake> = channel_ids
        .iter()
        .copied()
        .step_by(10)
        .take(big as usize)
        .collect();
    for room in &big_ids {
        stream::iter(users.iter().skip(1))
            .map(|u| {
                let m = Membership {
                    room_id: *room,
                    user_id: u.id,
                    role: Role::Member,
                    joined_at: now,
                };
                let store = &store;
                async move { store.put_member(&m).await }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        eprintln!("seed: big channel {room} in {:.1?}", started.elapsed());
    }
    store.flush().await?;
    Ok(Seeded {
        community: community.id,
        owner: owner.email.clone(),
        member: users[1].email.clone(),
        member_id: users[1].id,
        speakers,
        channels: channel_ids,
        big: big_ids,
        user_ids: users.iter().map(|u| u.id).collect(),
        seed_secs: started.elapsed().as_secs_f64(),
    })
}
