// The peer server for `tessera-bench run --peer oidc-provider`.
//
// tessera-bench writes this file into a temporary folder where it has run
// `npm install oidc-provider@8`, starts it with `node`, and measures it with
// the same load generator as Tessera. Settings come from the environment:
//
//   PEER_PORT        port of the OAuth endpoints (127.0.0.1)
//   PEER_ADMIN_PORT  port of the harness-only endpoint that mints refresh tokens
//   PEER_CLIENT_ID, PEER_CLIENT_SECRET  the one confidential client
//
// Storage: oidc-provider's own in-memory adapter (the default), except that
// its storage, a 1,000-entry LRU, is swapped for an unbounded map with the
// same interface. The benchmark keeps tens of thousands of tokens alive; with
// the LRU they would be evicted and lookups would fail, which measures
// nothing useful. Expiry is still honoured on read.
//
// Refresh tokens: oidc-provider hands them out only from the authorization
// code flow, which needs a browser interaction. The admin endpoint creates
// them the way that flow would in the end: a Grant for an account and the
// client, then a RefreshToken bound to that grant, saved through the
// provider's models. Each refresh token gets its own grant, as separate
// authorizations would. Rotation is on, so every refresh consumes its token
// and issues a new one.

import http from 'node:http';
import crypto from 'node:crypto';

import Provider from 'oidc-provider';
import { setStorage } from 'oidc-provider/lib/adapters/memory_adapter.js';

const port = Number(process.env.PEER_PORT);
const adminPort = Number(process.env.PEER_ADMIN_PORT);
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;
if (!port || !adminPort || !clientId || !clientSecret) {
  console.error('PEER_PORT, PEER_ADMIN_PORT, PEER_CLIENT_ID and PEER_CLIENT_SECRET must be set');
  process.exit(2);
}

// A map with the get/set/delete calls the memory adapter makes; `set` takes
// a lifetime in milliseconds, like quick-lru's.
class UnboundedStore {
  #entries = new Map();

  get(key) {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value, maxAge) {
    const expiresAt = typeof maxAge === 'number' && maxAge > 0 ? Date.now() + maxAge : undefined;
    this.#entries.set(key, { value, expiresAt });
    return this;
  }

  delete(key) {
    return this.#entries.delete(key);
  }

  has(key) {
    return this.get(key) !== undefined;
  }
}
setStorage(new UnboundedStore());

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  rotateRefreshToken: true,
  // Every subject is an account with no claims beyond `sub`.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // Long enough that nothing expires during a run.
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
    Grant: 86400,
    RefreshToken: 86400,
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const client = await provider.Client.find(clientId);
if (!client) {
  console.error('the configured client was not found');
  process.exit(1);
}

let accountSerial = 0;

async function mintRefreshToken() {
  accountSerial += 1;
  const accountId = `bench-account-${accountSerial}`;
  const grant = new provider.Grant({ accountId, clientId });
  grant.addOIDCScope('offline_access');
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    accountId,
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'offline_access',
  });
  return token.save();
}

// Harness-only endpoint, on its own port: POST /refresh-tokens?count=N
// answers a JSON array of N fresh refresh tokens.
const admin = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://admin');
  if (req.method !== 'POST' || url.pathname !== '/refresh-tokens') {
    res.writeHead(404).end();
    return;
  }
  const count = Number(url.searchParams.get('count'));
  if (!Number.isInteger(count) || count < 1 || count > 5_000_000) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('count must be an integer from 1 to 5000000');
    return;
  }
  try {
    const tokens = [];
    for (let i = 0; i < count; i += 1) {
      tokens.push(await mintRefreshToken());
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(tokens));
  } catch (err) {
    console.error('minting refresh tokens failed', err);
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
  }
});

function listen(server, p) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, '127.0.0.1', resolve);
  });
}

await listen(admin, adminPort);
await listen(http.createServer(provider.callback()), port);
console.log(`oidc-provider ${issuer} ready (admin on 127.0.0.1:${adminPort}, node ${process.version})`);
