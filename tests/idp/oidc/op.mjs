// A small OpenID provider on the npm package oidc-provider, for Tessera's
// tests.
//
//   node op.mjs <client-id> <client-secret> <redirect-uri> <post-logout-redirect-uri>
//
// Listens on 127.0.0.1 on a free port and prints `listening on <port>`; its
// issuer is `http://127.0.0.1:<port>`. One confidential client
// (client_secret_basic, code flow). The development login form takes any
// login and password; the account `alice` has an email, a name and the
// groups `oidc-admins` and `staff`, given by userinfo (the ID token carries
// only the protocol claims).
import http from 'node:http';
import Provider from 'oidc-provider';

const [clientId, clientSecret, redirectUri, postLogoutRedirectUri] = process.argv.slice(2);
if (!postLogoutRedirectUri) {
  console.error('usage: node op.mjs <client-id> <client-secret> <redirect-uri> <post-logout-redirect-uri>');
  process.exit(2);
}

const profiles = {
  alice: { email: 'alice@example.org', email_verified: true, name: 'Alice Liddell', groups: ['oidc-admins', 'staff'] },
};

let handler = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = http.createServer((req, res) => handler(req, res));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        post_logout_redirect_uris: [postLogoutRedirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, ...(profiles[id] ?? { email: `${id}@example.org`, groups: [] }) }),
    }),
    cookies: { keys: ['a test provider: not a secret'] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
  });
  handler = provider.callback();
  console.log(`listening on ${port}`);
});
