// An independent OpenID Provider for intyg's relying-party interop test: panva's
// oidc-provider (certified OpenID Provider library), configured like a Signicat-style broker:
// the personal number in `nin`, Freja's registration level in `freja_registration_level`,
// RS256 ID tokens, claims only from the userinfo endpoint (conformIdTokenClaims).
//
// Usage: PORT=... CLIENT_ID=... CLIENT_SECRET=... REDIRECT_URI=... ACCOUNTS='{"id": {...}}'
//        node server.mjs      -> prints "listening <issuer>" when ready.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS);
const LOA3 = 'http://id.elegnamnden.se/loa/1.0/loa3';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['intyg-interop-test-cookie-key-0001'] },
  claims: {
    openid: ['sub'],
    nin: ['nin', 'nin_type', 'nin_issuing_country'],
    profile: ['name', 'given_name', 'family_name', 'birthdate'],
    freja: ['freja_registration_level'],
  },
  scopes: ['openid', 'nin', 'profile', 'freja'],
  acrValues: [LOA3],
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function page(res, html) {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><title>interop OP</title>${html}`);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    const next = details.prompt.name === 'login' ? 'login' : 'confirm';
    page(res, `<form method="post" action="/interaction/${uid}/${next}">
      <input name="account"><button>${next}</button></form>`);
    return;
  }
  if (action === 'login') {
    const form = await readForm(req);
    const result = { login: { accountId: form.get('account'), acr: LOA3 } };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

const handle = provider.callback();
http.createServer((req, res) => {
  const match = new URL(req.url, issuer).pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm))?$/);
  if (!match) return handle(req, res);
  interaction(req, res, match[1], match[2]).catch((error) => {
    res.statusCode = 500;
    res.end(String(error));
  });
}).listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
