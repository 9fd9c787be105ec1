// Drives a running token-ledger with panva's oauth4webapi, a strict OAuth 2 client and resource
// server library written by someone else: discovery from the issuer (RFC 8414 section 3.1 path
// insertion), client_credentials, password, refresh, introspection, revocation, and RFC 9068
// validation of JWT access tokens as a resource server would do it.
//
// Inputs (environment): ISSUER, CLIENT_ID, CLIENT_SECRET (opaque tokens), JWT_CLIENT_ID,
// JWT_CLIENT_SECRET (JWT access tokens), LEDGER_USERNAME, LEDGER_PASSWORD. TLS trust comes from
// NODE_EXTRA_CA_CERTS. Prints one JSON line per step; exits 1 at the first failure.
// Run by tests/api/interop.rs.
import * as oauth from 'oauth4webapi';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};

const step = (name, detail = {}) => console.log(JSON.stringify({ step: name, ok: true, ...detail }));

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function discover(issuer) {
  const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2' });
  const as = await oauth.processDiscoveryResponse(issuer, response);
  step('discovery', { issuer: as.issuer, url: response.url });
  return as;
}

async function introspect(as, client, auth, token) {
  const response = await oauth.introspectionRequest(as, client, auth, token);
  return oauth.processIntrospectionResponse(as, client, response);
}

async function opaqueFlows(as) {
  const client = { client_id: env('CLIENT_ID') };
  const auth = oauth.ClientSecretBasic(env('CLIENT_SECRET'));

  let response = await oauth.clientCredentialsGrantRequest(as, client, auth, { scope: 'api' });
  const app = await oauth.processClientCredentialsResponse(as, client, response);
  expect(app.token_type.toLowerCase() === 'bearer' && app.access_token, 'client_credentials gave a bearer token');
  step('client_credentials');

  response = await oauth.genericTokenEndpointRequest(as, client, auth, 'password', {
    username: env('LEDGER_USERNAME'),
    password: env('LEDGER_PASSWORD'),
    scope: 'read',
  });
  const user = await oauth.processGenericTokenEndpointResponse(as, client, response);
  expect(user.refresh_token, 'the password grant gave a refresh token');
  step('password');

  response = await oauth.refreshTokenGrantRequest(as, client, auth, user.refresh_token);
  const refreshed = await oauth.processRefreshTokenResponse(as, client, response);
  expect(refreshed.access_token !== user.access_token, 'the refresh grant gave a new access token');
  step('refresh_token');

  const live = await introspect(as, client, auth, refreshed.access_token);
  expect(live.active === true && live.client_id === client.client_id, `introspection: ${JSON.stringify(live)}`);
  const old = await introspect(as, client, auth, user.access_token);
  expect(old.active === false, 'the refreshed-away token is inactive');
  step('introspection');

  response = await oauth.revocationRequest(as, client, auth, refreshed.access_token);
  await oauth.processRevocationResponse(response);
  const revoked = await introspect(as, client, auth, refreshed.access_token);
  expect(revoked.active === false, 'a revoked token is inactive');
  step('revocation');
}

async function jwtFlows(as) {
  const client = { client_id: env('JWT_CLIENT_ID') };
  const auth = oauth.ClientSecretBasic(env('JWT_CLIENT_SECRET'));
  const tokens = [];
  let response = await oauth.clientCredentialsGrantRequest(as, client, auth, { scope: 'api' });
  tokens.push(await oauth.processClientCredentialsResponse(as, client, response));
  response = await oauth.genericTokenEndpointRequest(as, client, auth, 'password', {
    username: env('LEDGER_USERNAME'),
    password: env('LEDGER_PASSWORD'),
    scope: 'read',
  });
  tokens.push(await oauth.processGenericTokenEndpointResponse(as, client, response));
  for (const token of tokens) {
    // What a resource server does with the bearer token it was sent.
    const request = new Request('https://resource.example/api', {
      headers: { authorization: `Bearer ${token.access_token}` },
    });
    const claims = await oauth.validateJwtAccessToken(as, request, client.client_id);
    expect(claims.iss === as.issuer, `iss ${claims.iss} is the issuer ${as.issuer}`);
    expect(claims.client_id === client.client_id, 'client_id claim');
  }
  step('validateJwtAccessToken', { tokens: tokens.length });
}

try {
  const as = await discover(new URL(env('ISSUER')));
  await opaqueFlows(as);
  await jwtFlows(as);
  step('done');
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error), code: error.code, cause: String(error.cause ?? '') }));
  process.exit(1);
}
