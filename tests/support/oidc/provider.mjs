// A real OpenID Connect provider for the sign-in tests: node `oidc-provider` (OpenID-certified) with an
// in-memory store on 127.0.0.1 and a free port.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"jwks": {"keys": [private JWKs]}, "cookie_keys": [...], "accounts_file": PATH,
//          "api": {"resource": URL, "audience": STRING}}
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it listens, then serves until killed.
// Clients register themselves (OpenID Connect Dynamic Client Registration, POST /reg): a test registers
// the redirect URIs of the portal it runs. Any login/password is accepted on the development login form
// (devInteractions); the account's claims are read from accounts_file ({"<login>": {claims}}) at each
// use, so a test can change them between sign-ins (an unknown login has only `sub`). PKCE (S256) is
// required.
// Access tokens requested with `resource=<api.resource>` are RS256 JWTs with `aud` = api.audience: what
// scripts send to the portal's API as `Authorization: Bearer`.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks: config.jwks,
    cookies: { keys: config.cookie_keys },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'api'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups', 'eduperson_entitlement'],
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== config.api.resource) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: config.api.audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    async findAccount(ctx, id) {
      const claims = JSON.parse(readFileSync(config.accounts_file, 'utf8'))[id] || {};
      return { accountId: id, claims: async () => ({ ...claims, sub: id }) };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
