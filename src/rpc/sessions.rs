//! `check_session` (the other session methods map straight onto the engine).

use super::Executor;
use crate::api::SessionExists;
use crate::error::Result;

pub async fn check(ex: &Executor, session: &str) -> Result<SessionExists> {
    Ok(SessionExists {
        exists: ex.engine.session_exists(session).await?,
    })
}
