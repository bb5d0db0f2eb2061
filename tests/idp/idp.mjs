// TEST ONLY: a real OpenID provider (panva's oidc-provider) for masctl's single
// sign-on tests. Usage: node idp.mjs CONFIG.json
//
// CONFIG.json (written by the test, read once at startup):
//   issuer         published exactly as given (MAS's strict discovery compares it byte for byte)
//   listen         {"host": "0.0.0.0", "port": 8443}
//   tls            {"key": "/path/key.pem", "cert": "/path/cert.pem"}
//   clients        [{client_id, client_secret_file, redirect_uris: [...]}]; confidential,
//                  client_secret_post. The secret is read from its file, never argv or env.
//   accounts       [{sub, password_file, preferred_username, name, email, email_verified}];
//                  the login form checks the password against the file's content (trimmed).
//
// The login and consent pages are this script's own (not oidc-provider's
// devInteractions, which accept any password): plain HTML forms, no JavaScript.
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const secret = (path) => readFileSync(path, 'utf8').trim();

const accounts = new Map(config.accounts.map((a) => [a.sub, { ...a, password: secret(a.password_file) }]));
const byLogin = (login) => [...accounts.values()].find((a) => a.sub === login || a.preferred_username === login);

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${html(title)}</title></head>
<body><h1>${html(title)}</h1>${body}</body></html>`;

function sameSecret(given, expected) {
  const a = Buffer.from(given ?? '');
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

// A fresh signing key per run: tokens from an earlier run must not verify.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') };

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: secret(c.client_secret_file),
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  async findAccount(ctx, sub) {
    const a = accounts.get(sub);
    if (!a) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { preferred_username, name, email, email_verified } = a;
        return { sub, preferred_username, name, email, email_verified };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'] },
  // MAS reads claims from the id_token unless fetch_userinfo is set.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => false },
});

async function formBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginForm(uid, error) {
  const err = error ? `<p role="alert" id="error">${html(error)}</p>` : '';
  return page('Sign in to the test IdP', `${err}
<form method="post" action="/interaction/${uid}/login">
<label>Username <input name="login" id="login" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password" required></label>
<button type="submit" id="sign-in">Sign in</button></form>`);
}

function consentForm(uid, clientId, scopes) {
  return page('Authorize', `<p>${html(clientId)} asks for: <span id="scopes">${html(scopes.join(' '))}</span></p>
<form method="post" action="/interaction/${uid}/confirm"><button type="submit" id="allow">Allow</button></form>`);
}

async function grantFor(details, session, params) {
  const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [ind, scope] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(ind, scope.join(' '));
  return grant.save();
}

// The interaction pages, before oidc-provider's own routes.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|confirm))?$/);
  if (!m) return next();
  const { uid, prompt, params, session } = await provider.interactionDetails(ctx.req, ctx.res);
  if (uid !== m[1]) ctx.throw(400, 'interaction mismatch');
  ctx.set('cache-control', 'no-store');
  ctx.type = 'html';
  if (ctx.method === 'GET') {
    ctx.body = prompt.name === 'login'
      ? loginForm(uid)
      : consentForm(uid, params.client_id, String(params.scope).split(' '));
    return undefined;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  if (m[2] === 'login' && prompt.name === 'login') {
    const body = await formBody(ctx.req);
    const a = byLogin(body.get('login'));
    if (!a || !sameSecret(body.get('password'), a.password)) {
      ctx.status = 401;
      ctx.body = loginForm(uid, 'Wrong username or password');
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: a.sub } }, { mergeWithLastSubmission: false });
  }
  if (m[2] === 'confirm' && prompt.name === 'consent') {
    const grantId = await grantFor(prompt.details, session, params);
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return ctx.throw(400, `unexpected ${m[2]} for prompt ${prompt.name}`);
});

const tls = { key: readFileSync(config.tls.key), cert: readFileSync(config.tls.cert) };
const server = createServer(tls, provider.callback());
server.listen(config.listen.port, config.listen.host, () => {
  // The test waits for this line (and then for discovery over HTTPS).
  console.log(`idp listening on ${config.listen.host}:${config.listen.port} issuer ${config.issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
