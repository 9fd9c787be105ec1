//! The ledger's `Mint`: makes token values with the client's generator, seals what may be
//! handed back, and remembers the plaintext of what it made so the reply can carry it.

use super::ledger::Granted;
use super::StoreError;
use crate::crypto::{self, Sealer};
use crate::domain::grant::{Draft, FreshRefresh, FreshToken, Mint, MintError, Outcome};
use crate::domain::types::Digest;
use crate::tokens::{AccessTokenClaims, TokenGenerator};

pub struct LedgerMint<'a> {
    sealer: &'a Sealer,
    generator: &'a dyn TokenGenerator,
    /// Seal the access token value so it can be handed back (renewal off).
    keep_access: bool,
    minted: Vec<(Digest, String)>,
}

impl<'a> LedgerMint<'a> {
    pub fn new(sealer: &'a Sealer, generator: &'a dyn TokenGenerator, keep_access: bool) -> Self {
        Self { sealer, generator, keep_access, minted: Vec::new() }
    }

    /// A value this mint made, or the sealed one opened.
    fn value(&self, digest: &Digest, sealed: Option<&str>) -> Result<String, StoreError> {
        if let Some((_, v)) = self.minted.iter().find(|(d, _)| d == digest) {
            return Ok(v.clone());
        }
        let sealed =
            sealed.ok_or_else(|| StoreError::Mint("a token value was neither minted nor kept".into()))?;
        Ok(self.sealer.open(sealed, &digest.0)?)
    }

    /// The token response's values for a decision's outcome.
    pub fn granted(&self, outcome: &Outcome) -> Result<Option<Granted>, StoreError> {
        let (token, expires_in) = match outcome {
            Outcome::Issued(t) => (t, (t.expires_at - t.issued_at) / 1000),
            Outcome::Returned { token, expires_in } => (token, *expires_in),
            Outcome::Done => return Ok(None),
        };
        let access_token = self.value(&token.access_digest, token.sealed_access.as_deref())?;
        let refresh_token = match &token.refresh {
            Some(r) => Some(self.value(&r.digest, Some(&r.sealed))?),
            None => None,
        };
        Ok(Some(Granted { access_token, refresh_token, scopes: token.scopes.clone(), expires_in }))
    }
}

impl Mint for LedgerMint<'_> {
    fn mint(&mut self, d: &Draft<'_>) -> Result<FreshToken, MintError> {
        let token_id = super::log::new_id();
        let claims = AccessTokenClaims { jti: token_id, draft: d };
        let access = self.generator.access_token(&claims).map_err(|e| MintError(e.0))?;
        let access_digest = Digest::of(access.as_bytes());
        let refresh = d.with_refresh.then(|| {
            let value = crypto::new_secret();
            let digest = Digest::of(value.as_bytes());
            // Refresh tokens may be carried over to a later token, so they are always kept.
            let sealed = self.sealer.seal(&value, &digest.0);
            self.minted.push((digest, value));
            FreshRefresh { digest, sealed }
        });
        let fresh = FreshToken {
            token_id,
            sealed_access: self.keep_access.then(|| self.sealer.seal(&access, &access_digest.0)),
            access_digest,
            refresh,
        };
        self.minted.push((access_digest, access));
        Ok(fresh)
    }
}
