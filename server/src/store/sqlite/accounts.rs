//! Accounts: users, teams, devices, login failures and dashboard sessions.

use super::Tx;
use super::rows::Cached;
use super::rows::is_unique_violation;
use crate::store::decode::{
    DEVICE_COLS, TEAM_COLS, USER_COLS, device_row, parse, parse_opt, team_row, user_row,
};
use crate::store::{AccountRead, AccountWrite, DeviceRow, StoreError, TeamRow, UserRow};
use rusqlite::OptionalExtension;
use rusqlite::params;
use sync_protocol::{DeviceId, Hlc, TeamId, UserId};

impl AccountRead for Tx<'_> {
    fn user_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.c.row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
            [username],
            |r| user_row(r, 0),
        )
    }

    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            [id.to_string()],
            |r| user_row(r, 0),
        )
    }

    fn deactivated_at(&mut self, id: UserId) -> Result<Option<Hlc>, StoreError> {
        let s: Option<Option<String>> = self
            .c
            .row(
                "SELECT deactivated_hlc FROM users WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        parse_opt(s.flatten(), "deactivation clock")
    }

    fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        self.c.decode_all(
            &format!("SELECT {USER_COLS} FROM users ORDER BY username"),
            [],
            |r| user_row(r, 0),
        )
    }

    fn team_members(
        &mut self,
        team: Option<TeamId>,
        supervisor: Option<UserId>,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut st = self.c.prepare_cached("SELECT id FROM users WHERE (?1 IS NOT NULL AND team_id = ?1) OR (?2 IS NOT NULL AND supervisor_id = ?2) ORDER BY id")?;
        let ids = st
            .query_map(
                params![
                    team.map(|t| t.to_string()),
                    supervisor.map(|s| s.to_string())
                ],
                |r| r.get::<_, String>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "user id")).collect()
    }

    fn team_by_name(&mut self, name: &str) -> Result<Option<TeamRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {TEAM_COLS} FROM teams WHERE name = ?1"),
            [name],
            |r| team_row(r),
        )
    }

    fn team(&mut self, id: TeamId) -> Result<Option<TeamRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {TEAM_COLS} FROM teams WHERE id = ?1"),
            [id.to_string()],
            |r| team_row(r),
        )
    }

    fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError> {
        self.c.decode_all(
            &format!("SELECT {TEAM_COLS} FROM teams ORDER BY name"),
            [],
            |r| team_row(r),
        )
    }

    fn device(&mut self, id: DeviceId) -> Result<Option<DeviceRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
            [id.to_string()],
            |r| device_row(r),
        )
    }

    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError> {
        self.c.decode_one(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?1"),
            [token_hash],
            |r| device_row(r),
        )
    }

    fn devices(&mut self, user: Option<UserId>) -> Result<Vec<DeviceRow>, StoreError> {
        self.c.decode_all(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created_at, id"),
            [user.map(|u| u.to_string())],
            |r| device_row(r),
        )
    }

    fn active_device_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.c.row("SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id WHERE d.revoked_at IS NULL AND u.active = 1", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn login_failures(
        &mut self,
        username: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(Vec<(String, i64)>, u64), StoreError> {
        let by_user = self
            .c
            .prepare_cached(
                "SELECT address, at_ms FROM login_failures WHERE username = ?1 AND at_ms >= ?2 ORDER BY at_ms",
            )?
            .query_map(params![username, since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let by_key: i64 = self.c.row(
            "SELECT count(*) FROM login_failures WHERE address = ?1 AND at_ms >= ?2",
            params![key, since_ms],
            |r| r.get(0),
        )?;
        Ok((by_user, by_key as u64))
    }

    fn dashboard_session(&mut self, id_hash: &[u8]) -> Result<Option<(UserId, i64)>, StoreError> {
        let row: Option<(String, i64)> = self
            .c
            .row(
                "SELECT user_id, expires_at_ms FROM dashboard_sessions WHERE id_hash = ?1",
                [id_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(u, exp)| Ok((parse(&u, "user id")?, exp)))
            .transpose()
    }
}

impl AccountWrite for Tx<'_> {
    fn insert_user(&mut self, u: &UserRow) -> Result<(), StoreError> {
        let res = self.c.exec(
            &format!("INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                u.id.to_string(),
                u.username,
                u.password_hash,
                u.role.as_str(),
                u.team_id.map(|t| t.to_string()),
                u.supervisor_id.map(|s| s.to_string()),
                u.active,
                u.created_at
            ],
        );
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Taken(format!("username {:?}", u.username)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn set_user_deactivated(&mut self, id: UserId, at: Option<Hlc>) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE users SET active = ?2, deactivated_hlc = ?3 WHERE id = ?1",
            params![id.to_string(), at.is_none(), at.map(|h| h.to_string())],
        )?;
        Ok(())
    }

    fn set_password(&mut self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![id.to_string(), password_hash],
        )?;
        Ok(())
    }

    fn insert_team(&mut self, t: &TeamRow) -> Result<(), StoreError> {
        let res = self.c.exec(
            "INSERT INTO teams (id, name, region, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![t.id.to_string(), t.name, t.region, t.created_at],
        );
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Taken(format!("team name {:?}", t.name)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn upsert_device(&mut self, d: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO devices (id, user_id, name, token_hash, created_at, last_seen_at, revoked_at, acked_through, clock_drift_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash, last_seen_at = excluded.last_seen_at, logged_out_at = NULL",
            params![d.id.to_string(), d.user_id.to_string(), d.name, token_hash, d.created_at, d.last_seen_at, d.acked_through as i64, d.clock_drift_ms],
        )?;
        Ok(())
    }

    fn revoke_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn log_out_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET logged_out_at = ?2 WHERE id = ?1 AND logged_out_at IS NULL",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn touch_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn set_acked_through(&mut self, id: DeviceId, seq: u64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET acked_through = ?2 WHERE id = ?1",
            params![id.to_string(), seq as i64],
        )?;
        Ok(())
    }

    fn set_clock_drift(&mut self, id: DeviceId, drift_ms: i64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET clock_drift_ms = ?2 WHERE id = ?1",
            params![id.to_string(), drift_ms],
        )?;
        Ok(())
    }

    fn add_login_failure(
        &mut self,
        username: &str,
        key: &str,
        at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<i64, StoreError> {
        self.c.exec(
            "DELETE FROM login_failures WHERE at_ms < ?1",
            [prune_before_ms],
        )?;
        Ok(self.c.row(
            "INSERT INTO login_failures (username, address, at_ms) VALUES (?1, ?2, ?3) RETURNING id",
            params![username, key, at_ms],
            |r| r.get(0),
        )?)
    }

    fn forget_login_failure(&mut self, id: i64) -> Result<(), StoreError> {
        self.c
            .exec("DELETE FROM login_failures WHERE id = ?1", [id])?;
        Ok(())
    }

    fn start_dashboard_session(
        &mut self,
        id_hash: &[u8],
        user: UserId,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE expires_at_ms <= ?1",
            [now_ms],
        )?;
        self.c.exec(
            "INSERT INTO dashboard_sessions (id_hash, user_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            params![id_hash, user.to_string(), expires_at_ms],
        )?;
        Ok(())
    }

    fn end_dashboard_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE id_hash = ?1",
            [id_hash],
        )?;
        Ok(())
    }

    fn end_user_dashboard_sessions(&mut self, user: UserId) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE user_id = ?1",
            [user.to_string()],
        )?;
        Ok(())
    }
}
