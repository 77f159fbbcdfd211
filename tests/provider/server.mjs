// A local OAuth 2.0 / OpenID Connect provider: oauth2-mock-server's authorize, token,
// userinfo and discovery endpoints, plus what the tests need to see and steer:
//   - codes and refresh tokens work once (refresh tokens rotate), as at strict providers;
//   - access and refresh tokens are recognisable canary values;
//   - RFC 7009 revocation at /revoke invalidates the token it is given;
//   - every request it handled is appended to PROVIDER_LOG (JSON lines);
//   - POST /__control {"token_ttl": s, "refresh": "ok"|"unavailable", "revoke_all": true,
//     "refresh_token_ttl": s (a grant's refresh tokens expire s after the sign-in, and each
//     answer says so in refresh_token_expires_in; 0: never), "revoke": "ok"|"unavailable",
//     "revoke_failures": n (the next n revocations answer 503), "api_reject": n (the next n
//     API calls answer 401), "api_limit": n and "api_retry_after": s (the next n API calls
//     answer 429 with Retry-After: s)};
//   - a small API under /api/ for the proxy: /api/me (200 with what it saw, or 401 for an
//     access token it never issued), /api/bytes?n=N[&length=1] (N bytes, streamed, with Content-Length if asked), /api/redirect (a
//     302 elsewhere). It reports credentials only as SHA-256 digests, never as themselves.
// Prints one line of JSON, {"issuer": "..."}, once it listens.
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';

const host = process.env.PROVIDER_HOST ?? '127.0.0.1';
const port = Number(process.env.PROVIDER_PORT ?? 0);
const logPath = process.env.PROVIDER_LOG;
const prefix = process.env.PROVIDER_TOKEN_PREFIX ?? 'demo';

const settings = {
  token_ttl: Number(process.env.PROVIDER_TOKEN_TTL ?? 3600),
  refresh: 'ok',
  refresh_token_ttl: 0,
  revoke: 'ok',
  revoke_failures: 0,
  api_reject: 0,
  api_limit: 0,
  api_retry_after: 1,
};
const issuedAccess = new Set();
// refresh token -> when its grant's refresh tokens expire (ms), with refresh_token_ttl.
const grantEnds = new Map();
const usedCodes = new Set();
const liveRefreshTokens = new Set();
const revoked = new Set();
let issued = 0;

const log = (entry) => {
  if (logPath) appendFileSync(logPath, JSON.stringify({ at: Date.now(), ...entry }) + '\n');
};

const issuer = new OAuth2Issuer();
await issuer.keys.generate('RS256');
const service = new OAuth2Service(issuer);

service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const q = new URL(req.url, 'http://provider').searchParams;
  log({
    endpoint: 'authorize',
    client_id: q.get('client_id'),
    redirect_uri: q.get('redirect_uri'),
    scope: q.get('scope'),
    code_challenge_method: q.get('code_challenge_method'),
    has_state: q.has('state'),
  });
});

service.on('beforeResponse', (response, req) => {
  const body = req.body ?? {};
  const grant = body.grant_type;
  const refuse = (error) => {
    response.statusCode = 400;
    response.body = { error };
    log({ endpoint: 'token', grant_type: grant, status: 400, error });
  };
  if (grant === 'authorization_code') {
    if (usedCodes.has(body.code)) return refuse('invalid_grant');
    usedCodes.add(body.code);
  }
  if (grant === 'refresh_token') {
    if (settings.refresh === 'unavailable') {
      response.statusCode = 503;
      response.body = { error: 'temporarily_unavailable' };
      log({ endpoint: 'token', grant_type: grant, status: 503 });
      return;
    }
    if (!liveRefreshTokens.has(body.refresh_token)) return refuse('invalid_grant');
    if (grantEnds.has(body.refresh_token) && grantEnds.get(body.refresh_token) <= Date.now()) {
      return refuse('invalid_grant');
    }
    liveRefreshTokens.delete(body.refresh_token);
  }
  issued += 1;
  response.body.access_token = `${prefix}-access-${issued}-${randomUUID()}`;
  issuedAccess.add(response.body.access_token);
  response.body.expires_in = settings.token_ttl;
  // An app's own token (client credentials) comes without a refresh token (RFC 6749 §4.4.3).
  if (grant === 'client_credentials') {
    delete response.body.refresh_token;
  } else {
    response.body.refresh_token = `${prefix}-refresh-${issued}-${randomUUID()}`;
    liveRefreshTokens.add(response.body.refresh_token);
    const ends =
      grant === 'refresh_token'
        ? grantEnds.get(body.refresh_token)
        : settings.refresh_token_ttl > 0
          ? Date.now() + settings.refresh_token_ttl * 1000
          : undefined;
    if (ends !== undefined) {
      grantEnds.set(response.body.refresh_token, ends);
      response.body.refresh_token_expires_in = Math.max(1, Math.round((ends - Date.now()) / 1000));
    }
  }
  log({
    endpoint: 'token',
    grant_type: grant,
    status: 200,
    redirect_uri: body.redirect_uri,
    has_code_verifier: typeof body.code_verifier === 'string',
    access_token: response.body.access_token,
    refresh_token: response.body.refresh_token,
  });
});

// The ID token names the same subject as the user info, as OpenID Connect requires (the
// service ignores user info about another subject).
service.on('beforeTokenSigning', (token) => {
  token.payload.sub = 'user-1';
});

service.on('beforeUserinfo', (response, req) => {
  const auth = req.headers.authorization ?? '';
  const token = auth.replace(/^Bearer /i, '');
  if (revoked.has(token)) {
    response.statusCode = 401;
    response.body = { error: 'invalid_token' };
  } else {
    response.body = {
      sub: 'user-1',
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
      email: 'ada@example.test',
      picture: 'https://example.test/ada.png',
    };
  }
  log({ endpoint: 'userinfo', status: response.statusCode });
});

const readBody = (req) =>
  new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 65536) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });

const digest = (value) => (value ? createHash('sha256').update(value).digest('hex') : null);

// The proxy's far end: what a provider's REST API would do with a call.
const api = async (req, res, path) => {
  const url = new URL(req.url, 'http://provider');
  const body = await readBody(req);
  const auth = req.headers.authorization ?? '';
  const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : null;
  const entry = { endpoint: 'api', method: req.method, path, query: url.search };
  const send = (status, headers, payload) => {
    log({ ...entry, status });
    res.writeHead(status, headers);
    res.end(payload);
  };
  if (settings.api_reject > 0) {
    settings.api_reject -= 1;
    return send(401, { 'content-type': 'application/json' }, JSON.stringify({ error: 'invalid_token' }));
  }
  if (settings.api_limit > 0) {
    settings.api_limit -= 1;
    return send(429, { 'content-type': 'application/json', 'retry-after': String(settings.api_retry_after) },
      JSON.stringify({ error: 'rate_limited' }));
  }
  if (bearer !== null && (!issuedAccess.has(bearer) || revoked.has(bearer))) {
    return send(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' },
      JSON.stringify({ error: 'invalid_token' }));
  }
  if (path === '/api/redirect') {
    return send(302, { location: 'http://127.0.0.1:9/elsewhere' }, '');
  }
  if (path === '/api/bytes') {
    const n = Number(url.searchParams.get('n') ?? 0);
    log({ ...entry, status: 200 });
    const headers = { 'content-type': 'application/octet-stream', 'set-cookie': 'session=api' };
    if (url.searchParams.get('length') === '1') headers['content-length'] = String(n);
    res.writeHead(200, headers);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let left = n;
    const more = () => {
      while (left > 0) {
        const piece = chunk.subarray(0, Math.min(left, chunk.length));
        left -= piece.length;
        if (!res.write(piece)) return res.once('drain', more);
      }
      res.end();
    };
    more();
    return;
  }
  const seen = {
    method: req.method,
    path,
    query: url.search,
    body,
    bearer_issued: bearer !== null,
    authorization_sha256: digest(req.headers.authorization),
    x_api_key_sha256: digest(req.headers['x-api-key']),
    header_names: Object.keys(req.headers).sort(),
  };
  send(200, { 'content-type': 'application/json', 'set-cookie': 'session=api', 'x-ratelimit-remaining': '42' },
    JSON.stringify(seen));
};

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://provider').pathname;
  try {
    if (req.method === 'POST' && path === '/__control') {
      const change = JSON.parse((await readBody(req)) || '{}');
      if (change.token_ttl !== undefined) settings.token_ttl = Number(change.token_ttl);
      if (change.refresh !== undefined) settings.refresh = change.refresh;
      if (change.revoke_all) liveRefreshTokens.clear();
      for (const key of ['refresh_token_ttl', 'revoke_failures', 'api_reject', 'api_limit', 'api_retry_after']) {
        if (change[key] !== undefined) settings[key] = Number(change[key]);
      }
      if (change.revoke !== undefined) settings.revoke = change.revoke;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(settings));
      return;
    }
    if (path.startsWith('/api/')) {
      await api(req, res, path);
      return;
    }
    if (req.method === 'POST' && path === '/revoke') {
      const form = new URLSearchParams(await readBody(req));
      const token = form.get('token') ?? '';
      if (settings.revoke === 'unavailable' || settings.revoke_failures > 0) {
        if (settings.revoke_failures > 0) settings.revoke_failures -= 1;
        log({ endpoint: 'revoke', token, status: 503 });
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: 'temporarily_unavailable' }));
        return;
      }
      liveRefreshTokens.delete(token);
      revoked.add(token);
      log({ endpoint: 'revoke', token, status: 200, token_type_hint: form.get('token_type_hint') });
      res.writeHead(200);
      res.end();
      return;
    }
  } catch (e) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'invalid_request' }));
    return;
  }
  service.requestHandler(req, res);
});

server.listen(port, host, () => {
  const address = server.address();
  issuer.url = `http://${host}:${address.port}`;
  console.log(JSON.stringify({ issuer: issuer.url }));
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
