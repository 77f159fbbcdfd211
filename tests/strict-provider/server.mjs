// A strict OAuth 2.0 / OpenID Connect provider for the end-to-end tests: panva's oidc-provider
// (a certified OpenID Provider implementation), kept at its shipped defaults wherever the tests
// allow. Where it differs from the defaults, the comment at that setting says why.
//
// What it does:
//   - one confidential client, read from the environment; it authenticates at the token and
//     revocation endpoints with client_secret_basic (RFC 6749 §2.3.1: client id and secret are
//     form-urlencoded, then joined with ':' and base64-encoded) unless STRICT_AUTH_METHOD says
//     otherwise;
//   - authorization code flow only (response_type=code), PKCE required for every request,
//     S256 only; the authorization response carries `iss` (RFC 9207, always on in this
//     version of oidc-provider);
//   - refresh tokens rotate on every use; presenting an already rotated refresh token fails with
//     invalid_grant and revokes the whole grant (oidc-provider's reuse detection); on rotation
//     the access tokens issued earlier from the same chain of refresh tokens are revoked too
//     (done by this file's adapter, not by oidc-provider);
//   - a refresh token is issued whenever the authorization request asks for `offline_access`:
//     such a request is treated as if it also carried `prompt=consent` (which OpenID Connect
//     Core §11 requires for offline_access), so the user always sees the consent form for it;
//   - RFC 7009 revocation at /token/revocation, userinfo at /me (the way for tests to ask whether
//     an access token still works: GET /me with `Authorization: Bearer ...` answers 200 or 401),
//     discovery at /.well-known/openid-configuration, RS256 keys generated at start at /jwks;
//   - two users (sub strict-user-1, and strict-user-2 for the login name grace@example.test) with
//     the claims sub, email, email_verified and name (scopes openid, email, profile); the sign-in
//     form accepts any login name and password, the consent form follows it; both are plain
//     HTML forms with no external resources. A second authorization in the same browser
//     session skips the sign-in form and reuses the session's grant (oidc-provider's default);
//   - every event oidc-provider emits that tells about authorization, tokens, grants and errors
//     is appended to STRICT_LOG as one JSON line, plus one "request" line per request; no token,
//     code or client secret value is ever written there.
// Prints one line of JSON, {"issuer":"http://127.0.0.1:PORT"}, on stdout once it listens.
//
// An authorization request (GET /auth) must carry response_type=code, client_id, a redirect_uri
// registered exactly, code_challenge and code_challenge_method=S256, and a scope with openid
// (needed for userinfo) and offline_access (needed for a refresh token); state and nonce are
// echoed (state in the redirect, nonce in the ID token). Missing PKCE: a redirect with
// error=invalid_request. The sign-in page (GET /interaction/{uid}) posts `login` and `password`
// to /interaction/{uid}/login (button "Sign in"); the consent page posts nothing but its button
// to /interaction/{uid}/confirm (button "Allow"); "Cancel" and "Deny" post to
// /interaction/{uid}/abort and end at the redirect URI with error=access_denied.
//
// Records (STRICT_LOG): {"at": ms, "event": name, ...}; the event is an oidc-provider event name
// (grant.success, grant.error, grant.revoked, refresh_token.consumed, access_token.saved, ...)
// with fields such as grant_type, client_id, grant_id, error, error_detail, or one of this file's
// own: request (one per request to the provider: endpoint, status, grant_type, client_auth,
// code_challenge_method, ...), revocation.success, rotation.access_tokens_revoked,
// interaction.login, interaction.consent, interaction.abort, interaction.error.
//
// Environment:
//   PROVIDER_PORT            port to listen on, 127.0.0.1 only (default 0: any free port)
//   STRICT_CLIENT_ID         the client's id (required)
//   STRICT_CLIENT_SECRET     the client's secret (required; printable ASCII, spaces allowed)
//   STRICT_REDIRECT_URIS     the client's redirect URIs, comma-separated (required)
//   STRICT_AUTH_METHOD       token_endpoint_auth_method (default client_secret_basic)
//   STRICT_ACCESS_TOKEN_TTL  access token lifetime in seconds (default 3600)
//   STRICT_REFRESH_TOKEN_TTL refresh token (and grant) lifetime in seconds (default 30 days)
//   STRICT_LOG               file to append the JSON-lines records to (default: none kept)
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const DAY = 24 * 60 * 60;

const fail = (message) => {
  process.stderr.write(`strict-provider: ${message}\n`);
  process.exit(2);
};
const required = (name) => process.env[name] || fail(`${name} must be set`);
const seconds = (name, fallback) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive whole number`);
  return value;
};

const port = Number(process.env.PROVIDER_PORT ?? 0);
const clientId = required('STRICT_CLIENT_ID');
const clientSecret = required('STRICT_CLIENT_SECRET');
const redirectUris = required('STRICT_REDIRECT_URIS')
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);
const authMethod = process.env.STRICT_AUTH_METHOD || 'client_secret_basic';
const accessTokenTtl = seconds('STRICT_ACCESS_TOKEN_TTL', 3600);
const refreshTokenTtl = seconds('STRICT_REFRESH_TOKEN_TTL', 30 * DAY);
const logPath = process.env.STRICT_LOG;

// ---------------------------------------------------------------------------------------------
// The records file. Values that must never appear in it (the client secret, and every token and
// code handed out) are collected here, and any field holding one is redacted before writing;
// the events below are written so that none does.
const neverLog = new Set([
  clientSecret,
  encodeURIComponent(clientSecret),
  new URLSearchParams({ s: clientSecret }).toString().slice(2),
]);
const remember = (...values) => {
  for (const value of values) if (typeof value === 'string' && value) neverLog.add(value);
};
const redact = (value) => {
  if (typeof value === 'string') {
    for (const secret of neverLog) {
      if (value === secret || (secret.length >= 8 && value.includes(secret))) return '[redacted]';
    }
    return value;
  }
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]));
  }
  return value;
};
const record = (event, fields = {}) => {
  if (!logPath) return;
  appendFileSync(logPath, `${JSON.stringify({ at: Date.now(), event, ...redact(fields) })}\n`);
};

// ---------------------------------------------------------------------------------------------
// Storage: an in-memory adapter with the interface oidc-provider documents for adapters
// (example/my_adapter.js). Besides storing, it links every access and refresh token to the
// chain of refresh tokens it belongs to, so that consuming (rotating) a refresh token revokes
// the access tokens issued before it in the same chain. The chain travels through each request
// in `requestScope` (set by the middleware further down).
const requestScope = new AsyncLocalStorage();
const stored = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const byGrant = new Map(); // grantId -> Set of keys
const chainOf = new Map(); // key of an AccessToken or RefreshToken -> chain id
const sessionByUid = new Map(); // Session uid -> id
const byUserCode = new Map(); // device flow user code -> id (unused here, part of the interface)

const CHAINED = new Set(['AccessToken', 'RefreshToken']);
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

const forget = (key) => {
  const entry = stored.get(key);
  stored.delete(key);
  chainOf.delete(key);
  const grantId = entry?.payload?.grantId;
  if (grantId) byGrant.get(grantId)?.delete(key);
};
const live = (key) => {
  const entry = stored.get(key);
  if (entry && entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    forget(key);
    return undefined;
  }
  return entry;
};

class StrictAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    stored.set(key, { payload, expiresAt });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (CHAINED.has(this.model) && !chainOf.has(key)) {
      // A token exchange (code or refresh) saves its new access and refresh token in one
      // request: both join the chain of the refresh token it consumed, or start a new one.
      const perRequest = requestScope.getStore();
      if (perRequest) perRequest.chain ??= randomUUID();
      chainOf.set(key, perRequest?.chain ?? randomUUID());
    }
  }

  async find(id) {
    return live(this.key(id))?.payload;
  }

  async findByUid(uid) {
    const id = sessionByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const key = this.key(id);
    const entry = live(key);
    if (!entry) return;
    entry.payload.consumed = Math.floor(Date.now() / 1000);
    if (this.model !== 'RefreshToken') return;

    // Rotation: the new tokens of this request continue this refresh token's chain, and the
    // access tokens issued earlier in it stop working.
    const chain = chainOf.get(key);
    const perRequest = requestScope.getStore();
    if (perRequest && chain) perRequest.chain = chain;
    const grantId = entry.payload.grantId;
    let revoked = 0;
    for (const other of [...(byGrant.get(grantId) ?? [])]) {
      if (other.startsWith('AccessToken:') && chain && chainOf.get(other) === chain) {
        forget(other);
        revoked += 1;
      }
    }
    record('rotation.access_tokens_revoked', {
      client_id: entry.payload.clientId,
      grant_id: grantId,
      count: revoked,
    });
  }

  async destroy(id) {
    forget(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of [...(byGrant.get(grantId) ?? [])]) {
      if (key.startsWith(`${this.model}:`)) forget(key);
    }
    if (byGrant.get(grantId)?.size === 0) byGrant.delete(grantId);
  }
}

// ---------------------------------------------------------------------------------------------
// Two users. The login name grace@example.test signs in as the second; any other login name
// signs in as the first.
const USERS = [
  { sub: 'strict-user-1', email: 'ada@example.test', email_verified: true, name: 'Ada Lovelace' },
  { sub: 'strict-user-2', email: 'grace@example.test', email_verified: true, name: 'Grace Hopper' },
];
const accountFor = (login) => (login === USERS[1].email ? USERS[1] : USERS[0]);

async function findAccount(ctx, id) {
  const user = USERS.find((u) => u.sub === id);
  if (!user) return undefined;
  return {
    accountId: user.sub,
    // oidc-provider keeps only the claims the granted scopes and claims allow.
    async claims() {
      return { ...user };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Pages. oidc-provider's own HTML pages (error, logout) load a web font from the internet; these
// replacements are self-contained, so a browser driven by the tests never leaves the machine.
const esc = (value) =>
  String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title, body) => `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
  body { font-family: sans-serif; max-width: 26rem; margin: 3rem auto; padding: 0 1rem; }
  label { display: block; margin: 0.75rem 0; }
  input { display: block; width: 100%; padding: 0.4rem; box-sizing: border-box; }
  button { padding: 0.5rem 1.2rem; margin: 0.75rem 0.5rem 0 0; }
  .error { color: #a00; }
  form.inline { display: inline; }
</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
${body}
</main>
</body>
</html>
`;

const loginPage = (uid, details, message) =>
  page(
    'Sign in',
    `<p>Sign in to continue to <strong>${esc(details.params.client_id)}</strong>.
Any login name and password will do.</p>
${message ? `<p class="error">${esc(message)}</p>` : ''}
<form id="login" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label>Login <input type="text" name="login" required autofocus></label>
  <label>Password <input type="password" name="password" required></label>
  <button type="submit" id="sign-in">Sign in</button>
</form>
<form id="cancel" class="inline" method="post" action="/interaction/${esc(uid)}/abort">
  <button type="submit" id="cancel-button">Cancel</button>
</form>`,
  );

const consentPage = (uid, details) => {
  const { params, prompt } = details;
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  const scopes = requested.filter((s) => s !== 'openid' && s !== 'offline_access');
  const missingClaims = (prompt.details.missingOIDCClaims ?? []).filter(
    (c) => !['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss'].includes(c),
  );
  const items = [
    ...scopes.map((s) => `<li>scope <code>${esc(s)}</code></li>`),
    ...missingClaims.map((c) => `<li>claim <code>${esc(c)}</code></li>`),
  ];
  if (requested.includes('offline_access')) {
    items.push('<li>offline access: keep access while you are away (a refresh token)</li>');
  }
  if (items.length === 0) items.push('<li>confirm the access you gave before</li>');
  return page(
    'Authorize',
    `<p><strong>${esc(params.client_id)}</strong> asks for:</p>
<ul>
${items.join('\n')}
</ul>
<form id="consent" class="inline" method="post" action="/interaction/${esc(uid)}/confirm">
  <button type="submit" id="allow" autofocus>Allow</button>
</form>
<form id="deny" class="inline" method="post" action="/interaction/${esc(uid)}/abort">
  <button type="submit" id="deny-button">Deny</button>
</form>`,
  );
};

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page(
    'Something went wrong',
    Object.entries(out)
      .map(([key, value]) => `<p><strong>${esc(key)}</strong>: ${esc(value)}</p>`)
      .join('\n'),
  );
}

async function logoutSource(ctx, form) {
  ctx.body = page(
    'Sign out',
    `<p>Do you want to sign out from ${esc(ctx.host)}?</p>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
  );
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p>You are signed out.</p>');
}

// ---------------------------------------------------------------------------------------------
// Keys: one RSA key for RS256, made at start.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `rs256-${randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

const configuration = {
  adapter: StrictAdapter,
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      token_endpoint_auth_method: authMethod,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
  ],
  jwks: { keys: [signingKey] },
  // Signed cookies, as oidc-provider recommends; the keys live as long as the process.
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    long: { signed: true },
    short: { signed: true },
  },
  // Scopes email and profile come from these claim groups.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  findAccount,
  features: {
    devInteractions: { enabled: false }, // replaced by the forms below
    revocation: { enabled: true }, // off by default
    userinfo: { enabled: true }, // the default, stated because the tests rely on it
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // PKCE: oidc-provider 8.8 already requires it for every request and offers only S256;
  // stated here so that the tests do not depend on a default.
  pkce: {
    methods: ['S256'],
    required: () => true,
  },
  // Rotate every refresh token on every use (the default rotates only public clients' tokens
  // and tokens past 70% of their lifetime). Reuse of a rotated token revokes the grant.
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: refreshTokenTtl,
    Grant: refreshTokenTtl,
    Session: refreshTokenTtl,
    Interaction: 3600,
  },
  renderError,
  clientBasedCORS: () => false,
};

// ---------------------------------------------------------------------------------------------
// Records: what each event means, without token values (the `jti` of an opaque token is its
// value, so it is never read here).
const clientOf = (ctx) => ctx?.oidc?.client?.clientId;
const errorFields = (err) => ({
  error: err?.error ?? err?.message,
  error_description: err?.error_description,
  error_detail: err?.error_detail,
});
const tokenFields = (token) => ({
  client_id: token.clientId,
  grant_id: token.grantId,
  gty: token.gty,
  scope: token.scope,
  rotations: token.rotations,
  expires_in: token.remainingTTL,
});
const TOKEN_TYPES = {
  AccessToken: 'access_token',
  RefreshToken: 'refresh_token',
  ClientCredentials: 'client_credentials',
};

const EVENTS = {
  'authorization.accepted': (ctx) => ({ client_id: clientOf(ctx) }),
  'interaction.started': (ctx, prompt) => ({
    client_id: clientOf(ctx),
    prompt: prompt?.name,
    reasons: prompt?.reasons,
  }),
  'interaction.ended': (ctx) => ({ client_id: clientOf(ctx) }),
  'authorization.success': (ctx, out) => {
    remember(out?.code, out?.access_token, out?.id_token);
    return {
      client_id: clientOf(ctx),
      scope: ctx.oidc.params?.scope,
      prompt: ctx.oidc.params?.prompt,
      code_challenge_method: ctx.oidc.params?.code_challenge_method,
      response: out ? Object.keys(out) : undefined,
      iss: out?.iss,
      grant_id: ctx.oidc.entities?.Grant?.jti,
    };
  },
  'authorization.error': (ctx, err) => ({
    client_id: clientOf(ctx),
    code_challenge_method: ctx.oidc?.params?.code_challenge_method,
    ...errorFields(err),
  }),
  'grant.success': (ctx) => {
    const body = ctx.body ?? {};
    remember(body.access_token, body.refresh_token, body.id_token);
    return {
      grant_type: ctx.oidc.params?.grant_type,
      client_id: clientOf(ctx),
      grant_id: ctx.oidc.entities?.Grant?.jti,
      issued: ['access_token', 'refresh_token', 'id_token'].filter((t) => body[t]),
      scope: body.scope,
      expires_in: body.expires_in,
      rotated: Boolean(ctx.oidc.entities?.RotatedRefreshToken),
    };
  },
  'grant.error': (ctx, err) => ({
    grant_type: ctx.oidc?.params?.grant_type,
    client_id: clientOf(ctx),
    ...errorFields(err),
  }),
  'grant.revoked': (ctx, grantId) => ({
    client_id: clientOf(ctx),
    grant_id: grantId,
    // token: a reused refresh token or code; revocation: a refresh token was revoked;
    // end_session: the user signed out.
    cause: ctx?.oidc?.route,
  }),
  'revocation.error': (ctx, err) => ({ client_id: clientOf(ctx), ...errorFields(err) }),
  'userinfo.error': (ctx, err) => ({ client_id: clientOf(ctx), ...errorFields(err) }),
  'end_session.success': (ctx) => ({ client_id: clientOf(ctx) }),
  'end_session.error': (ctx, err) => ({ client_id: clientOf(ctx), ...errorFields(err) }),
  'backchannel.success': (ctx, client, accountId, sid) => ({ client_id: client?.clientId }),
  'backchannel.error': (ctx, err, client) => ({ client_id: client?.clientId, ...errorFields(err) }),
  'discovery.error': (ctx, err) => errorFields(err),
  'jwks.error': (ctx, err) => errorFields(err),
  server_error: (ctx, err) => ({
    path: ctx?.path,
    error: 'server_error',
    message: String(err?.message ?? err),
  }),
  'authorization_code.saved': (token) => tokenFields(token),
  'authorization_code.consumed': (token) => tokenFields(token),
  'authorization_code.destroyed': (token) => tokenFields(token),
  'access_token.saved': (token) => tokenFields(token),
  'access_token.destroyed': (token) => tokenFields(token),
  'refresh_token.saved': (token) => tokenFields(token),
  'refresh_token.consumed': (token) => tokenFields(token),
  'refresh_token.destroyed': (token) => tokenFields(token),
  'grant.saved': (grant) => ({
    client_id: grant.clientId,
    grant_id: grant.jti,
    scope: grant.openid?.scope,
  }),
  'grant.destroyed': (grant) => ({ client_id: grant.clientId, grant_id: grant.jti }),
};

// ---------------------------------------------------------------------------------------------
// Requests: one "request" record each, and the per-request scope the adapter uses.
function requestFields(ctx) {
  const route = ctx.oidc?.route;
  const fields = {
    endpoint: route ?? ctx.path,
    method: ctx.method,
    status: ctx.status,
  };
  if (route === 'authorization') {
    const q = ctx.method === 'POST' ? (ctx.oidc.body ?? {}) : ctx.query;
    const perRequest = requestScope.getStore() ?? {};
    Object.assign(fields, {
      client_id: q.client_id,
      redirect_uri: q.redirect_uri,
      response_type: q.response_type,
      scope: q.scope,
      // as the client sent it; consent_prompt_added tells whether consent was added to it
      prompt: perRequest.consentAdded ? perRequest.promptSent : q.prompt,
      code_challenge_method: q.code_challenge_method,
      has_code_challenge: q.code_challenge !== undefined,
      has_state: q.state !== undefined,
      has_nonce: q.nonce !== undefined,
      consent_prompt_added: perRequest.consentAdded ?? false,
    });
  }
  if (route === 'token' || route === 'revocation') {
    const body = ctx.oidc.body ?? {};
    const basic = /^basic /i.test(ctx.get('authorization'));
    Object.assign(fields, {
      grant_type: route === 'token' ? body.grant_type : undefined,
      token_type_hint: route === 'revocation' ? body.token_type_hint : undefined,
      client_id: clientOf(ctx) ?? body.client_id,
      client_auth: basic ? 'basic' : body.client_secret !== undefined ? 'post' : 'none',
      has_code_verifier: route === 'token' ? body.code_verifier !== undefined : undefined,
    });
  }
  if (route === 'userinfo') {
    fields.bearer = /^bearer /i.test(ctx.get('authorization'));
  }
  const location = ctx.response.get('location');
  if (location && /^(authorization|resume)$/.test(route ?? '')) {
    // Only the names of the parameters sent back, and an error code: the code is a secret.
    try {
      const url = new URL(location, 'http://provider.invalid');
      if (!url.pathname.startsWith('/interaction/')) {
        fields.redirect_params = [...url.searchParams.keys()];
        if (url.searchParams.has('error')) fields.error = url.searchParams.get('error');
      }
    } catch {
      // not a URL: nothing to add
    }
  }
  return fields;
}

// ---------------------------------------------------------------------------------------------
// The interaction routes (sign-in and consent), on the same server as the provider.
const readForm = (req) =>
  new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 65536) {
        reject(new Error('form too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });

const sendHtml = (res, status, html) => {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'x-frame-options': 'DENY',
  });
  res.end(html);
};

async function interaction(provider, req, res, path) {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/.exec(path);
  if (!match) return sendHtml(res, 404, page('Not found', '<p>No such page.</p>'));
  const [, uid, action] = match;
  const method = req.method;
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) {
      return sendHtml(res, 400, page('Sign-in expired', '<p>Start again from the application.</p>'));
    }
    const prompt = details.prompt.name;

    if (!action && method === 'GET') {
      if (prompt === 'login') return sendHtml(res, 200, loginPage(uid, details));
      if (prompt === 'consent') return sendHtml(res, 200, consentPage(uid, details));
      return sendHtml(res, 501, page('Not implemented', `<p>prompt ${esc(prompt)}</p>`));
    }
    if (method !== 'POST') {
      res.writeHead(405, { allow: 'POST' });
      return res.end();
    }
    const form = await readForm(req);

    if (action === 'login') {
      if (prompt !== 'login') throw new Error(`login posted while the prompt is ${prompt}`);
      const login = form.get('login')?.trim();
      if (!login || !form.get('password')) {
        return sendHtml(res, 400, loginPage(uid, details, 'Enter a login name and a password.'));
      }
      const account = accountFor(login).sub;
      record('interaction.login', { client_id: details.params.client_id, account });
      return await provider.interactionFinished(
        req,
        res,
        { login: { accountId: account } },
        { mergeWithLastSubmission: false },
      );
    }

    if (action === 'confirm') {
      if (prompt !== 'consent') throw new Error(`consent posted while the prompt is ${prompt}`);
      const missing = details.prompt.details;
      let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
      grant ??= new provider.Grant({
        accountId: details.session.accountId,
        clientId: details.params.client_id,
      });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      record('interaction.consent', {
        client_id: details.params.client_id,
        grant_id: grantId,
        scope: details.params.scope,
      });
      return await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
    }

    // abort
    record('interaction.abort', { client_id: details.params.client_id, prompt });
    return await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User aborted interaction' },
      { mergeWithLastSubmission: false },
    );
  } catch (err) {
    record('interaction.error', { path: action ?? 'page', ...errorFields(err) });
    if (!res.headersSent) {
      sendHtml(res, 400, page('Sign-in failed', `<p>${esc(err.error_description ?? err.message)}</p>`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Start: listen first (the issuer names the port), then make the provider.
let handle = (req, res) => {
  res.writeHead(503);
  res.end();
};
const server = createServer((req, res) => handle(req, res));

server.listen(port, HOST, () => {
  const issuer = `http://${HOST}:${server.address().port}`;
  const provider = new Provider(issuer, configuration);

  for (const [name, describe] of Object.entries(EVENTS)) {
    provider.on(name, (...args) => {
      try {
        record(name, describe(...args));
      } catch (err) {
        record(name, { note: `could not describe: ${err.message}` });
      }
    });
  }

  const authorizationPath = new URL(provider.urlFor('authorization')).pathname;
  provider.use(async (ctx, next) =>
    requestScope.run({}, async () => {
      // offline_access: OpenID Connect Core §11 wants prompt=consent with it, and oidc-provider
      // drops offline_access from requests without it. Here the request is taken as if it
      // carried prompt=consent, so that offline_access alone brings a refresh token and the user
      // still consents to it. prompt=none is left alone (offline_access is then dropped).
      if (ctx.method === 'GET' && ctx.path === authorizationPath) {
        const q = new URLSearchParams(ctx.querystring);
        const scopes = (q.get('scope') ?? '').split(' ');
        const prompts = (q.get('prompt') ?? '').split(' ').filter(Boolean);
        if (
          q.getAll('scope').length === 1 &&
          q.getAll('prompt').length <= 1 &&
          scopes.includes('offline_access') &&
          !prompts.includes('consent') &&
          !prompts.includes('none')
        ) {
          const perRequest = requestScope.getStore();
          perRequest.promptSent = q.get('prompt') ?? undefined;
          perRequest.consentAdded = true;
          q.set('prompt', [...prompts, 'consent'].join(' '));
          ctx.querystring = q.toString();
        }
      }
      try {
        await next();
      } finally {
        try {
          if (ctx.oidc?.route === 'revocation' && ctx.status === 200) {
            // oidc-provider 8.8 emits no event for a successful revocation: this is that record.
            const { AccessToken, RefreshToken, ClientCredentials } = ctx.oidc.entities;
            const token = RefreshToken ?? AccessToken ?? ClientCredentials;
            record('revocation.success', {
              client_id: clientOf(ctx),
              token_type: TOKEN_TYPES[token?.kind] ?? 'unknown',
              token_type_hint: ctx.oidc.params?.token_type_hint,
              grant_id: token?.grantId,
            });
          }
          record('request', requestFields(ctx));
        } catch (err) {
          record('request', { endpoint: ctx.path, note: `could not describe: ${err.message}` });
        }
      }
    }),
  );

  const callback = provider.callback();
  handle = (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    if (path.startsWith('/interaction/')) {
      interaction(provider, req, res, path).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    callback(req, res);
  };

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
