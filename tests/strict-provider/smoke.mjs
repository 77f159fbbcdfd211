// Smoke test of the strict provider: starts server.mjs, then drives it as a browser and a
// confidential client would, with nothing but Node's fetch (manual redirects) and a small
// cookie jar:
//   - discovery and JWKS;
//   - an authorization request without PKCE, and one with the plain method, are refused;
//   - a full authorization: /auth with PKCE S256, state, nonce and offline_access, the sign-in
//     form, the consent form, back at the redirect URI with code, state and iss;
//   - the code exchange with client_secret_basic (id and secret form-urlencoded, the secret
//     holding + / = : % & and spaces), the ID token's RS256 signature checked against the JWKS;
//   - Basic credentials that are not form-encoded, or carry a wrong secret, are refused;
//     client_secret_post is accepted all the same (oidc-provider treats the two alike) and the
//     records tell which one a request used;
//   - refresh with rotation: the old access token stops working, a reused refresh token fails
//     with invalid_grant and takes the grant (and every token of it) down;
//   - a second and third authorization in the same browser session: PKCE mismatch, code reuse,
//     RFC 7009 revocation of an access token and of a refresh token;
//   - an authorization without offline_access gets no refresh token; denied consent ends in
//     error=access_denied;
//   - the records file: the events the tests judge by, and no token, code or secret in it.
// Prints PASS or FAIL per check and a closing "N passed, N failed"; exits 1 on any failure.
//   node tests/strict-provider/smoke.mjs
import { spawn } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'strict-provider-smoke-'));
const logPath = join(work, 'records.jsonl');

const CLIENT_ID = 'smoke-client';
const CLIENT_SECRET = 'Smoke+secret/with=all:the%special& chars';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

let passed = 0;
let failed = 0;
const check = (name, ok, detail) => {
  if (ok) {
    passed += 1;
    console.log(`PASS ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
  return ok;
};

// ---------------------------------------------------------------------------------------------
// The server.
const child = spawn(process.execPath, [join(here, 'server.mjs')], {
  env: {
    ...process.env,
    PROVIDER_PORT: '0',
    STRICT_CLIENT_ID: CLIENT_ID,
    STRICT_CLIENT_SECRET: CLIENT_SECRET,
    STRICT_REDIRECT_URIS: `${REDIRECT_URI},http://127.0.0.1:9/other`,
    STRICT_LOG: logPath,
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let stdout = '';
let stderr = '';
child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));

const finish = (code) => {
  child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
  process.exit(code);
};
const crashed = (err) => {
  failed += 1;
  console.log(`FAIL the smoke test stopped: ${err?.stack ?? err}`);
  console.log(`FAIL: ${passed} passed, ${failed} failed`);
  finish(1);
};
process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);

const issuer = await new Promise((resolve) => {
  const deadline = setTimeout(() => resolve(undefined), 20000);
  const look = () => {
    const newline = stdout.indexOf('\n');
    if (newline >= 0) {
      clearTimeout(deadline);
      try {
        resolve(JSON.parse(stdout.slice(0, newline)).issuer);
      } catch {
        resolve(undefined);
      }
    }
  };
  child.stdout.on('data', look);
  child.on('exit', () => resolve(undefined));
});
if (!check('server prints {"issuer": ...} as its first line', /^http:\/\/127\.0\.0\.1:\d+$/.test(issuer ?? ''), stdout + stderr)) {
  console.log(`0 passed, ${failed} failed`);
  finish(1);
}
const firstLine = stdout.slice(0, stdout.indexOf('\n'));
check('the issuer line is exactly {"issuer":"..."}', firstLine === JSON.stringify({ issuer }), firstLine);

// ---------------------------------------------------------------------------------------------
// Helpers: encodings, a cookie jar, a browser that follows redirects by hand, forms.
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const formEncode = (s) => new URLSearchParams({ v: s }).toString().slice(2);
const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const GOOD_BASIC = basic(formEncode(CLIENT_ID), formEncode(CLIENT_SECRET));

const jar = new Map(); // `${name}\t${path}` -> { name, value, path }
const storeCookies = (response) => {
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const attr of attrs) {
      const [k, v = ''] = attr.split('=');
      const key = k.toLowerCase();
      if (key === 'path') path = v;
      if (key === 'max-age' && Number(v) <= 0) expired = true;
      if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
    }
    const id = `${name}\t${path}`;
    if (expired) jar.delete(id);
    else jar.set(id, { name, value, path });
  }
};
const cookieHeader = (url) =>
  [...jar.values()]
    .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
    .sort((a, b) => b.path.length - a.path.length)
    .map((c) => `${c.name}=${c.value}`)
    .join('; ');

const browserRequest = async (url, { method = 'GET', form } = {}) => {
  const target = new URL(url);
  const headers = { accept: 'text/html,application/xhtml+xml', 'user-agent': 'strict-provider-smoke' };
  const cookie = cookieHeader(target);
  if (cookie) headers.cookie = cookie;
  if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const response = await fetch(target, {
    method,
    headers,
    body: form ? new URLSearchParams(form).toString() : undefined,
    redirect: 'manual',
  });
  storeCookies(response);
  return response;
};

// Follows redirects until the redirect URI (not fetched) or a page.
const browse = async (url, init) => {
  let response = await browserRequest(url, init);
  let current = url;
  const trail = [];
  for (let hops = 0; hops < 10; hops += 1) {
    if (response.status < 300 || response.status >= 400) {
      return { page: await response.text(), status: response.status, url: current, trail };
    }
    const next = new URL(response.headers.get('location'), current).href;
    trail.push(`${response.status} ${new URL(next).pathname}`);
    if (next.startsWith(REDIRECT_URI)) return { callback: new URL(next), trail };
    current = next;
    response = await browserRequest(current);
  }
  throw new Error('too many redirects');
};

const decodeEntities = (s) =>
  s
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
const attrsOf = (tag) =>
  Object.fromEntries([...tag.matchAll(/([\w-]+)(?:="([^"]*)")?/g)].map(([, k, v]) => [k.toLowerCase(), decodeEntities(v ?? '')]));
const formsOf = (html) =>
  [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, attrs, inner]) => ({
    ...attrsOf(attrs),
    inputs: [...inner.matchAll(/<input\b([^>]*)>/g)].map(([, a]) => attrsOf(a)),
    buttons: [...inner.matchAll(/<button\b[^>]*>([\s\S]*?)<\/button>/g)].map(([, label]) => label.trim()),
  }));
// Submits the form whose button has this label, with these values typed into its fields.
const submit = async (at, label, values = {}) => {
  const form = formsOf(at.page).find((f) => f.buttons.includes(label));
  if (!form) throw new Error(`no form with a "${label}" button at ${at.url}`);
  const fields = {};
  for (const input of form.inputs) if (input.name) fields[input.name] = input.value ?? '';
  for (const [name, value] of Object.entries(values)) {
    if (!(name in fields)) throw new Error(`the form has no field ${name}`);
    fields[name] = value;
  }
  return browse(new URL(form.action, at.url).href, { method: (form.method ?? 'get').toUpperCase(), form: fields });
};

// ---------------------------------------------------------------------------------------------
// Discovery and keys.
const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
check('discovery: issuer', discovery.issuer === issuer, discovery.issuer);
check('discovery: authorization_response_iss_parameter_supported', discovery.authorization_response_iss_parameter_supported === true);
check('discovery: S256 is the only PKCE method', JSON.stringify(discovery.code_challenge_methods_supported) === '["S256"]', discovery.code_challenge_methods_supported);
check('discovery: revocation, userinfo and jwks endpoints', Boolean(discovery.revocation_endpoint && discovery.userinfo_endpoint && discovery.jwks_uri));
check('discovery: client_secret_basic offered', discovery.token_endpoint_auth_methods_supported?.includes('client_secret_basic'));
check('discovery: RS256 ID tokens', discovery.id_token_signing_alg_values_supported?.includes('RS256'));
check('discovery: scopes openid email profile offline_access', ['openid', 'email', 'profile', 'offline_access'].every((s) => discovery.scopes_supported?.includes(s)), discovery.scopes_supported);

const jwks = await (await fetch(discovery.jwks_uri)).json();
check('jwks: an RSA RS256 signing key', jwks.keys?.some((k) => k.kty === 'RSA' && k.alg === 'RS256' && k.kid));
check('jwks: public parts only', jwks.keys?.every((k) => k.d === undefined && k.p === undefined));

// ---------------------------------------------------------------------------------------------
// Authorization.
const newPkce = () => {
  const verifier = b64url(randomBytes(32));
  return { verifier, challenge: b64url(createHash('sha256').update(verifier).digest()) };
};
const authorizeUrl = (params) => `${discovery.authorization_endpoint}?${new URLSearchParams(params)}`;
const authParams = (pkce, extra = {}) => ({
  response_type: 'code',
  client_id: CLIENT_ID,
  redirect_uri: REDIRECT_URI,
  scope: 'openid email profile offline_access',
  state: b64url(randomBytes(12)),
  nonce: b64url(randomBytes(12)),
  ...(pkce ? { code_challenge: pkce.challenge, code_challenge_method: 'S256' } : {}),
  ...extra,
});

{
  const params = authParams(undefined);
  const noPkce = await browse(authorizeUrl(params));
  check(
    'authorize without PKCE: invalid_request at the redirect URI',
    noPkce.callback?.searchParams.get('error') === 'invalid_request' && noPkce.callback.searchParams.get('state') === params.state,
    noPkce.callback?.href ?? noPkce.page,
  );
  const plain = await browse(authorizeUrl({ ...authParams(undefined), code_challenge: b64url(randomBytes(32)), code_challenge_method: 'plain' }));
  check('authorize with code_challenge_method=plain: invalid_request', plain.callback?.searchParams.get('error') === 'invalid_request', plain.callback?.href ?? plain.page);
}

// Runs an authorization to its end and returns the callback's parameters.
const authorize = async ({ scope, expectLogin }) => {
  const pkce = newPkce();
  const params = authParams(pkce, scope ? { scope } : {});
  let at = await browse(authorizeUrl(params));
  if (expectLogin) {
    check('the authorization request leads to a sign-in form', Boolean(at.page && formsOf(at.page).some((f) => f.buttons.includes('Sign in'))), at);
    const form = formsOf(at.page ?? '').find((f) => f.buttons.includes('Sign in'));
    check('sign-in form: POST to /interaction/{uid}/login with fields login and password', form?.method === 'post' && /^\/interaction\/[\w-]+\/login$/.test(form?.action) && ['login', 'password'].every((n) => form.inputs.some((i) => i.name === n)), form);
    at = await submit(at, 'Sign in', { login: 'anyone@example.test', password: 'any password' });
  }
  check(`${expectLogin ? 'after signing in, ' : 'in the same session, '}a consent form`, Boolean(at.page && formsOf(at.page).some((f) => f.buttons.includes('Allow'))), at);
  const form = formsOf(at.page ?? '').find((f) => f.buttons.includes('Allow'));
  check('consent form: POST to /interaction/{uid}/confirm', form?.method === 'post' && /^\/interaction\/[\w-]+\/confirm$/.test(form?.action), form);
  at = await submit(at, 'Allow');
  const cb = at.callback;
  check('back at the redirect URI with code, state and iss', Boolean(cb?.searchParams.get('code')) && cb.searchParams.get('state') === params.state && cb.searchParams.get('iss') === issuer, cb?.href ?? at);
  return { code: cb?.searchParams.get('code'), pkce, params };
};

// ---------------------------------------------------------------------------------------------
// The token endpoint, userinfo, revocation.
const post = async (url, form, authorization = GOOD_BASIC) => {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (authorization) headers.authorization = authorization;
  const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: response.status, json, headers: response.headers };
};
const token = (form, authorization) => post(discovery.token_endpoint, form, authorization);
const revoke = (form) => post(discovery.revocation_endpoint, form);
const userinfo = async (accessToken) => {
  const response = await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` } });
  return { status: response.status, json: await response.json().catch(() => ({})) };
};
const exchange = (code, verifier) =>
  token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
const refresh = (refreshToken, authorization) => token({ grant_type: 'refresh_token', refresh_token: refreshToken }, authorization);

const seen = new Set([CLIENT_SECRET, formEncode(CLIENT_SECRET), encodeURIComponent(CLIENT_SECRET), GOOD_BASIC.slice(6)]);
const keep = (...values) => values.forEach((v) => typeof v === 'string' && v && seen.add(v));

const verifyIdToken = (idToken, nonce) => {
  const [h, p, s] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  const signed = jwk && header.alg === 'RS256' && verify('RSA-SHA256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
  return { signed, header, payload, nonceOk: payload.nonce === nonce };
};

// Flow A: sign in, consent, exchange, refresh with rotation and reuse detection.
const a = await authorize({ expectLogin: true });
keep(a.code);
const a1 = await exchange(a.code, a.pkce.verifier);
keep(a1.json.access_token, a1.json.refresh_token, a1.json.id_token);
check('code exchange with client_secret_basic (form-encoded id and secret): 200', a1.status === 200, a1.json);
check('token response: Bearer access token, refresh token, ID token', a1.json.token_type === 'Bearer' && Boolean(a1.json.access_token && a1.json.refresh_token && a1.json.id_token), Object.keys(a1.json));
check('token response: scope has offline_access without prompt=consent in the request', a1.json.scope?.split(' ').includes('offline_access'), a1.json.scope);
check('token response: expires_in 3600', a1.json.expires_in === 3600, a1.json.expires_in);
if (a1.json.id_token) {
  const id = verifyIdToken(a1.json.id_token, a.params.nonce);
  check('ID token: RS256 signature verifies with the JWKS', id.signed, id.header);
  check('ID token: iss, aud, nonce, sub', id.payload.iss === issuer && id.payload.aud === CLIENT_ID && id.nonceOk && id.payload.sub === 'strict-user-1', id.payload);
}

{
  const raw = await refresh(a1.json.refresh_token, basic(CLIENT_ID, CLIENT_SECRET));
  check('Basic with the raw secret (% & and spaces unencoded): refused, 400 invalid_request', raw.status === 400 && raw.json.error === 'invalid_request', raw);
  const rawPlus = formEncode(CLIENT_SECRET).replace(/%2B/g, '+');
  const plus = await refresh(a1.json.refresh_token, basic(CLIENT_ID, rawPlus));
  check('Basic with a raw "+" in the secret: 401 invalid_client', plus.status === 401 && plus.json.error === 'invalid_client', plus);
  const wrong = await refresh(a1.json.refresh_token, basic(CLIENT_ID, formEncode(`${CLIENT_SECRET}x`)));
  check('Basic with a wrong secret: 401 invalid_client', wrong.status === 401 && wrong.json.error === 'invalid_client', wrong);
}

const u1 = await userinfo(a1.json.access_token);
check('userinfo with the access token: sub, email, email_verified, name', u1.status === 200 && u1.json.sub === 'strict-user-1' && u1.json.email === 'ada@example.test' && u1.json.email_verified === true && u1.json.name === 'Ada Lovelace', u1);

const a2 = await refresh(a1.json.refresh_token);
keep(a2.json.access_token, a2.json.refresh_token, a2.json.id_token);
check('refresh: 200 with a new access token and a new (rotated) refresh token', a2.status === 200 && a2.json.access_token && a2.json.refresh_token && a2.json.refresh_token !== a1.json.refresh_token && a2.json.access_token !== a1.json.access_token, a2.json);
check('after the refresh, the previous access token is refused (401)', (await userinfo(a1.json.access_token)).status === 401);
check('after the refresh, the new access token works', (await userinfo(a2.json.access_token)).status === 200);

const a3 = await refresh(a1.json.refresh_token);
check('reusing the rotated refresh token: 400 invalid_grant', a3.status === 400 && a3.json.error === 'invalid_grant', a3);
const a4 = await refresh(a2.json.refresh_token);
check('after reuse, the newest refresh token is dead too (grant revoked): invalid_grant', a4.status === 400 && a4.json.error === 'invalid_grant', a4);
check('after reuse, the newest access token is refused (401)', (await userinfo(a2.json.access_token)).status === 401);

// Flow B: same browser session (no sign-in), PKCE mismatch, code reuse.
const b = await authorize({ expectLogin: false });
keep(b.code);
const bBad = await exchange(b.code, newPkce().verifier);
check('code exchange with the wrong code_verifier: invalid_grant', bBad.status === 400 && bBad.json.error === 'invalid_grant', bBad);
const bNone = await token({ grant_type: 'authorization_code', code: b.code, redirect_uri: REDIRECT_URI });
check('code exchange without code_verifier: invalid_grant', bNone.status === 400 && bNone.json.error === 'invalid_grant', bNone);
const b1 = await exchange(b.code, b.pkce.verifier);
keep(b1.json.access_token, b1.json.refresh_token, b1.json.id_token);
check('code exchange with the right verifier afterwards: 200', b1.status === 200, b1.json);
const b2 = await exchange(b.code, b.pkce.verifier);
check('reusing the code: invalid_grant', b2.status === 400 && b2.json.error === 'invalid_grant', b2);
check('after code reuse, its access token is refused (401)', (await userinfo(b1.json.access_token)).status === 401);

// Flow C: revocation (RFC 7009).
const c = await authorize({ expectLogin: false });
keep(c.code);
const c1 = await exchange(c.code, c.pkce.verifier);
keep(c1.json.access_token, c1.json.refresh_token, c1.json.id_token);
check('flow C code exchange: 200', c1.status === 200, c1.json);
const rAt = await revoke({ token: c1.json.access_token, token_type_hint: 'access_token' });
check('revoking the access token: 200', rAt.status === 200, rAt);
check('the revoked access token is refused at userinfo (401 invalid_token)', (await userinfo(c1.json.access_token)).status === 401);
const c2 = await refresh(c1.json.refresh_token);
keep(c2.json.access_token, c2.json.refresh_token, c2.json.id_token);
check('the refresh token still works after its access token was revoked', c2.status === 200, c2.json);
const rRt = await revoke({ token: c2.json.refresh_token, token_type_hint: 'refresh_token' });
check('revoking the refresh token: 200', rRt.status === 200, rRt);
const c3 = await refresh(c2.json.refresh_token);
check('the revoked refresh token: invalid_grant', c3.status === 400 && c3.json.error === 'invalid_grant', c3);
check('revoking the refresh token also ends its access token (401)', (await userinfo(c2.json.access_token)).status === 401);
const rUnknown = await revoke({ token: 'not-a-token-at-all' });
check('revoking an unknown token: 200 (RFC 7009)', rUnknown.status === 200, rUnknown);

// Flow D: no offline_access, no refresh token.
const d = await authorize({ expectLogin: false, scope: 'openid email profile' });
keep(d.code);
// oidc-provider takes client_secret_post from a client registered for client_secret_basic (it
// treats the two as one method); the records tell which one a request used.
const d1 = await token(
  { grant_type: 'authorization_code', code: d.code, redirect_uri: REDIRECT_URI, code_verifier: d.pkce.verifier, client_id: CLIENT_ID, client_secret: CLIENT_SECRET },
  null,
);
keep(d1.json.access_token, d1.json.id_token);
check('without offline_access: tokens but no refresh token', d1.status === 200 && d1.json.access_token && d1.json.refresh_token === undefined, d1.json);
check('client_secret_post from a client_secret_basic client: accepted (oidc-provider treats them alike)', d1.status === 200, d1.json);

// Flow E: the user denies consent.
{
  const params = authParams(newPkce());
  const at = await browse(authorizeUrl(params));
  const denied = at.page ? await submit(at, 'Deny') : at;
  check('denying consent: access_denied at the redirect URI, with state and iss', denied.callback?.searchParams.get('error') === 'access_denied' && denied.callback.searchParams.get('state') === params.state && denied.callback.searchParams.get('iss') === issuer, denied.callback?.href ?? denied);
}

// ---------------------------------------------------------------------------------------------
// The records file.
const text = readFileSync(logPath, 'utf8');
const lines = text.trim().split('\n').map((l) => JSON.parse(l));
const where = (event, match = {}) => lines.filter((l) => l.event === event && Object.entries(match).every(([k, v]) => l[k] === v));

check('records: every line has at and event', lines.every((l) => typeof l.at === 'number' && typeof l.event === 'string'));
const leaked = [...seen].filter((v) => text.includes(v));
check('records: no token, code, client secret or Basic credentials in the file', leaked.length === 0, `${leaked.length} value(s) found`);
check('records: authorization.success with code_challenge_method S256', where('authorization.success').length === 4 && where('authorization.success').every((l) => l.code_challenge_method === 'S256' && l.response?.includes('iss')), where('authorization.success'));
check('records: authorization.error access_denied for the denied consent', where('authorization.error', { error: 'access_denied' }).length === 1, where('authorization.error'));
check('records: authorization.error invalid_request for the request without PKCE', where('authorization.error', { error: 'invalid_request' }).some((l) => l.code_challenge_method === undefined && /PKCE/.test(l.error_detail ?? l.error_description ?? '')), where('authorization.error'));
check('records: the authorization requests carry code_challenge_method', where('request', { endpoint: 'authorization' }).filter((l) => l.code_challenge_method === 'S256').length === 5, where('request', { endpoint: 'authorization' }));
check('records: grant.success authorization_code x4', where('grant.success', { grant_type: 'authorization_code' }).length === 4);
check('records: grant.success refresh_token x2, each rotated', where('grant.success', { grant_type: 'refresh_token' }).length === 2 && where('grant.success', { grant_type: 'refresh_token' }).every((l) => l.rotated), where('grant.success', { grant_type: 'refresh_token' }));
check('records: grant.error invalid_grant "refresh token already used"', where('grant.error', { grant_type: 'refresh_token', error: 'invalid_grant' }).some((l) => l.error_detail === 'refresh token already used'));
check('records: grant.error invalid_client for the bad Basic credentials', where('grant.error', { error: 'invalid_client' }).length === 2, where('grant.error', { error: 'invalid_client' }));
check('records: grant.revoked by refresh token reuse, code reuse and revocation', where('grant.revoked', { cause: 'token' }).length === 2 && where('grant.revoked', { cause: 'revocation' }).length === 1, where('grant.revoked'));
check('records: refresh_token.consumed x2, refresh_token.saved x5, access_token.saved x6', where('refresh_token.consumed').length === 2 && where('refresh_token.saved').length === 5 && where('access_token.saved').length === 6, { consumed: where('refresh_token.consumed').length, rt: where('refresh_token.saved').length, at: where('access_token.saved').length });
check('records: rotation.access_tokens_revoked, count 1 then 0 (flow C revoked its access token first)', JSON.stringify(where('rotation.access_tokens_revoked').map((l) => l.count)) === '[1,0]', where('rotation.access_tokens_revoked'));
check('records: revocation.success for an access_token and a refresh_token', where('revocation.success', { token_type: 'access_token' }).length === 1 && where('revocation.success', { token_type: 'refresh_token' }).length === 1, where('revocation.success'));
check('records: a request line with grant_type for every token request', where('request', { endpoint: 'token' }).length === 15 && where('request', { endpoint: 'token' }).every((l) => typeof l.grant_type === 'string'), where('request', { endpoint: 'token' }).length);
check('records: the request lines tell Basic from body credentials', where('request', { endpoint: 'token', client_auth: 'post' }).length === 1 && where('request', { endpoint: 'token', client_auth: 'basic' }).length === 14, where('request', { endpoint: 'token' }).map((l) => l.client_auth));
check('records: userinfo.error invalid_token for each refused access token', where('userinfo.error', { error: 'invalid_token' }).length === 5, where('userinfo.error').length);
check('records: no server_error', where('server_error').length === 0, where('server_error'));
check('the server printed nothing but the issuer line', stdout.trim() === firstLine && stderr === '', stdout.slice(firstLine.length) + stderr);

console.log(`${failed === 0 ? 'PASS' : 'FAIL'}: ${passed} passed, ${failed} failed`);
finish(failed === 0 ? 0 : 1);
