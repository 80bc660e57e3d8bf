// This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
// distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
// A real OpenID Connect provider for Hygie's tests (panva/oidc-provider, OpenID Certified), on loopback only.
//
// Usage: node provider.mjs <config.json>   (the JSON is written by the tests in a temporary directory:
// { "issuer", "port", "client": {client_id, client_secret, redirect_uris}, "identities": {login: {level, claims}} })
//
// Interactions are the provider's own prompts answered by a tiny login page (login + the token the test wants):
//   normal       the provider's ID token, untouched;
//   forged       the same claims signed by a key the provider does not publish (same kid as its real key);
//   wrong-nonce  signed by the provider's real key, but carrying another login's nonce.
// The acr granted is the strongest level asked (acr_values) that the identity holds, else the identity's level.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK } from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const LEVELS = ['eidas1', 'eidas2', 'eidas3'];
const KID = 'hygie-test-signing';

async function rsaKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
}
const published = await rsaKey();
const unpublished = await rsaKey();

const SCOPES = ['given_name', 'family_name', 'birthdate', 'gender', 'birthplace', 'birthcountry'];
const claims = { openid: ['sub'] };
for (const s of SCOPES) claims[s] = [s];

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client.client_id,
    client_secret: config.client.client_secret,
    redirect_uris: config.client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [published] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims,
  scopes: ['openid', ...SCOPES],
  acrValues: LEVELS,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const identity = config.identities[id];
    if (!identity) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...identity.claims }) };
  },
});

// What the next token response of each account should be (set at login, used once at the token endpoint).
const tokenMode = new Map();

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || !ctx.body || typeof ctx.body !== 'object' || !ctx.body.id_token) return;
  const payload = decodeJwt(ctx.body.id_token);
  const mode = tokenMode.get(payload.sub) || 'normal';
  tokenMode.delete(payload.sub);
  if (mode === 'normal') return;
  const header = decodeProtectedHeader(ctx.body.id_token);
  if (mode === 'wrong-nonce') payload.nonce = randomBytes(16).toString('base64url');
  const key = await importJWK(mode === 'forged' ? unpublished : published, 'RS256');
  ctx.body = { ...ctx.body, id_token: await new SignJWT(payload).setProtectedHeader(header).sign(key) };
});

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  return `<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Fournisseur d'identité de test</title></head>
<body><main><h1>Fournisseur d'identité de test</h1>${error ? `<p role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label for="login">Identifiant</label><input id="login" name="login" autocomplete="off">
<label for="token">Jeton</label><select id="token" name="token">
<option value="normal">normal</option><option value="forged">forged</option><option value="wrong-nonce">wrong-nonce</option>
</select><button type="submit">Se connecter au fournisseur</button></form></main></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function granted(identity, asked) {
  const held = LEVELS.indexOf(identity.level);
  const wanted = (asked || '').split(' ').filter((a) => LEVELS.includes(a) && LEVELS.indexOf(a) <= held);
  return wanted.length ? wanted.sort((a, b) => LEVELS.indexOf(b) - LEVELS.indexOf(a))[0] : identity.level;
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const url = new URL(req.url, config.issuer);
  if (req.method === 'POST' && url.pathname.endsWith('/login')) {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const identity = config.identities[login];
    if (!identity) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(loginPage(details.uid, 'Identifiant inconnu.'));
    }
    tokenMode.set(login, form.get('token') || 'normal');
    const acr = granted(identity, details.params.acr_values);
    return provider.interactionFinished(req, res, { login: { accountId: login, acr, amr: ['pwd'] } },
      { mergeWithLastSubmission: false });
  }
  if (details.prompt.name === 'login') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(loginPage(details.uid));
  }
  // Consent: granted at once for every scope and claim asked (the test provider has one client, the hub).
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
  } else {
    callback(req, res);
  }
});
server.listen(config.port, '127.0.0.1', () => console.log(`ready ${config.issuer}`));
