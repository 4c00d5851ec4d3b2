//! Accounts: users, teams, devices, login failures and dashboard sessions.

use super::Tx;
use super::opening::Ask;
use super::rows::{DEVICE_WITH_USER, col, seq};
use crate::store::decode::{
    DEVICE_COLS, TEAM_COLS, USER_COLS, device_row, device_with_user_row, parse, parse_opt,
    team_row, user_row,
};
use crate::store::{AccountRead, AccountWrite, DeviceRow, StoreError, TeamRow, UserRow};
use sync_protocol::{DeviceId, Hlc, TeamId, UserId};

impl AccountRead for Tx<'_> {
    fn user_count(&mut self) -> Result<u64, StoreError> {
        let r = self.one("SELECT count(*) FROM users", &[])?;
        Ok(col::<i64>(&r, 0)? as u64)
    }

    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.opt(
            &format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
            &[&username],
        )?
        .map(|r| user_row(&r, 0))
        .transpose()
    }

    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        if let Some(u) = self.behind.as_ref().and_then(|b| b.known.users.get(&id)) {
            return Ok(u.clone());
        }
        self.opt(
            &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
            &[&id.to_string()],
        )?
        .map(|r| user_row(&r, 0))
        .transpose()
    }

    fn deactivated_at(&mut self, id: UserId) -> Result<Option<Hlc>, StoreError> {
        let s: Option<String> = self
            .opt(
                "SELECT deactivated_hlc FROM users WHERE id = $1",
                &[&id.to_string()],
            )?
            .map(|r| col::<Option<String>>(&r, 0))
            .transpose()?
            .flatten();
        parse_opt(s, "deactivation clock")
    }

    fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        self.query(
            &format!("SELECT {USER_COLS} FROM users ORDER BY username COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(|r| user_row(r, 0))
        .collect()
    }

    fn team_members(
        &mut self,
        team: Option<TeamId>,
        supervisor: Option<UserId>,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = self.query(
            "SELECT id FROM users WHERE ($1::text IS NOT NULL AND team_id = $1) OR ($2::text IS NOT NULL AND supervisor_id = $2) ORDER BY id COLLATE \"C\"",
            &[&team.map(|t| t.to_string()), &supervisor.map(|s| s.to_string())],
        )?;
        rows.iter()
            .map(|r| parse(&col::<String>(r, 0)?, "user id"))
            .collect()
    }

    fn team_by_name(&mut self, name: &str) -> Result<Option<TeamRow>, StoreError> {
        self.opt(
            &format!("SELECT {TEAM_COLS} FROM teams WHERE name = $1"),
            &[&name],
        )?
        .map(|r| team_row(&r))
        .transpose()
    }

    fn team(&mut self, id: TeamId) -> Result<Option<TeamRow>, StoreError> {
        self.opt(
            &format!("SELECT {TEAM_COLS} FROM teams WHERE id = $1"),
            &[&id.to_string()],
        )?
        .map(|r| team_row(&r))
        .transpose()
    }

    fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError> {
        self.query(
            &format!("SELECT {TEAM_COLS} FROM teams ORDER BY name COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(team_row)
        .collect()
    }

    fn device(&mut self, id: DeviceId) -> Result<Option<DeviceRow>, StoreError> {
        let stored = if self.unsent.is_some() {
            self.ask(Ask::Device(id))?
                .first()
                .map(device_row)
                .transpose()?
        } else {
            self.opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"),
                &[&id.to_string()],
            )?
            .map(|r| device_row(&r))
            .transpose()?
        };
        // Bookkeeping kept behind is laid over the stored row.
        let pending = self
            .behind
            .as_ref()
            .and_then(|b| b.pending.devices.get(&id));
        Ok(stored.map(|mut d| {
            if let Some(u) = pending {
                if let Some(seen) = &u.last_seen_at {
                    d.last_seen_at = Some(seen.clone());
                }
                if let Some(a) = u.acked_through {
                    d.acked_through = a;
                }
                if let Some(drift) = u.clock_drift_ms {
                    d.clock_drift_ms = Some(drift);
                }
            }
            d
        }))
    }

    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError> {
        self.flush_devices()?;
        self.opt(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = $1"),
            &[&token_hash],
        )?
        .map(|r| device_row(&r))
        .transpose()
    }

    fn device_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<UserRow>)>, StoreError> {
        self.flush_devices()?;
        if self.unsent.is_some() {
            return self
                .ask(Ask::Token(token_hash.to_vec()))?
                .first()
                .map(device_with_user_row)
                .transpose();
        }
        self.opt(DEVICE_WITH_USER, &[&token_hash])?
            .map(|r| device_with_user_row(&r))
            .transpose()
    }

    fn devices(&mut self, user: Option<UserId>) -> Result<Vec<DeviceRow>, StoreError> {
        self.flush_devices()?;
        self.query(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE $1::text IS NULL OR user_id = $1 ORDER BY created_at COLLATE \"C\", id COLLATE \"C\""),
            &[&user.map(|u| u.to_string())],
        )?
        .iter()
        .map(device_row)
        .collect()
    }

    fn active_device_count(&mut self) -> Result<u64, StoreError> {
        let r = self.one("SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id WHERE d.revoked_at IS NULL AND u.active", &[])?;
        Ok(col::<i64>(&r, 0)? as u64)
    }

    fn login_failures(
        &mut self,
        username: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(Vec<(String, i64)>, u64), StoreError> {
        let by_user = self
            .query(
                "SELECT address, at_ms FROM login_failures WHERE username = $1 AND at_ms >= $2 ORDER BY at_ms",
                &[&username, &since_ms],
            )?
            .iter()
            .map(|r| Ok((col::<String>(r, 0)?, col::<i64>(r, 1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let r = self.one(
            "SELECT count(*) FROM login_failures WHERE address = $1 AND at_ms >= $2",
            &[&key, &since_ms],
        )?;
        Ok((by_user, col::<i64>(&r, 0)? as u64))
    }

    fn dashboard_session(&mut self, id_hash: &[u8]) -> Result<Option<(UserId, i64)>, StoreError> {
        self.opt(
            "SELECT user_id, expires_at_ms FROM dashboard_sessions WHERE id_hash = $1",
            &[&id_hash],
        )?
        .map(|r| {
            Ok((
                parse(&col::<String>(&r, 0)?, "user id")?,
                col::<i64>(&r, 1)?,
            ))
        })
        .transpose()
    }
}

impl AccountWrite for Tx<'_> {
    fn insert_user(&mut self, u: &UserRow) -> Result<(), StoreError> {
        self.forget_users();
        self.insert_unique(
            &format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[
                &u.id.to_string(),
                &u.username,
                &u.password_hash,
                &u.role.as_str(),
                &u.team_id.map(|t| t.to_string()),
                &u.supervisor_id.map(|s| s.to_string()),
                &u.active,
                &u.created_at,
            ],
            || format!("username {:?}", u.username),
        )
    }

    fn set_user_deactivated(&mut self, id: UserId, at: Option<Hlc>) -> Result<(), StoreError> {
        self.forget_users();
        self.exec(
            "UPDATE users SET active = $2, deactivated_hlc = $3 WHERE id = $1",
            &[&id.to_string(), &at.is_none(), &at.map(|h| h.to_string())],
        )?;
        Ok(())
    }

    fn set_password(&mut self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        self.forget_users();
        self.exec(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&id.to_string(), &password_hash],
        )?;
        Ok(())
    }

    fn insert_team(&mut self, t: &TeamRow) -> Result<(), StoreError> {
        self.insert_unique(
            "INSERT INTO teams (id, name, region, created_at) VALUES ($1, $2, $3, $4)",
            &[&t.id.to_string(), &t.name, &t.region, &t.created_at],
            || format!("team name {:?}", t.name),
        )
    }

    fn upsert_device(&mut self, d: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "INSERT INTO devices (id, user_id, name, token_hash, created_at, last_seen_at, revoked_at, acked_through, clock_drift_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash, last_seen_at = excluded.last_seen_at, logged_out_at = NULL",
            &[
                &d.id.to_string(),
                &d.user_id.to_string(),
                &d.name,
                &token_hash,
                &d.created_at,
                &d.last_seen_at,
                &seq(d.acked_through),
                &d.clock_drift_ms,
            ],
        )?;
        Ok(())
    }

    fn revoke_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.to_string(), &at],
        )?;
        Ok(())
    }

    fn log_out_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "UPDATE devices SET logged_out_at = $2 WHERE id = $1 AND logged_out_at IS NULL",
            &[&id.to_string(), &at],
        )?;
        Ok(())
    }

    fn touch_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.last_seen_at = Some(at.to_owned()));
        self.flush_if_full()
    }

    fn set_acked_through(&mut self, id: DeviceId, s: u64) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.acked_through = Some(s));
        self.flush_if_full()
    }

    fn set_clock_drift(&mut self, id: DeviceId, drift_ms: i64) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.clock_drift_ms = Some(drift_ms));
        self.flush_if_full()
    }

    fn add_login_failure(
        &mut self,
        username: &str,
        key: &str,
        at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<i64, StoreError> {
        self.exec(
            "DELETE FROM login_failures WHERE at_ms < $1",
            &[&prune_before_ms],
        )?;
        let r = self.one(
            "INSERT INTO login_failures (username, address, at_ms) VALUES ($1, $2, $3) RETURNING id",
            &[&username, &key, &at_ms],
        )?;
        col::<i64>(&r, 0)
    }

    fn forget_login_failure(&mut self, id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM login_failures WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn start_dashboard_session(
        &mut self,
        id_hash: &[u8],
        user: UserId,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE expires_at_ms <= $1",
            &[&now_ms],
        )?;
        self.exec(
            "INSERT INTO dashboard_sessions (id_hash, user_id, expires_at_ms) VALUES ($1, $2, $3)",
            &[&id_hash, &user.to_string(), &expires_at_ms],
        )?;
        Ok(())
    }

    fn end_dashboard_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE id_hash = $1",
            &[&id_hash],
        )?;
        Ok(())
    }

    fn end_user_dashboard_sessions(&mut self, user: UserId) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE user_id = $1",
            &[&user.to_string()],
        )?;
        Ok(())
    }
}
