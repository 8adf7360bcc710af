// A small SAML identity provider on samlify, for Tessera's tests.
//
//   node idp.js <sp-metadata.xml> <idp.key> <idp.crt> <entity-id> [encrypt]
//
// With `encrypt`, assertions are encrypted for the SP's encryption
// certificate (from its metadata; AES-256-CBC under RSA-OAEP).
// Listens on 127.0.0.1 on a free port and prints `listening on <port>`.
//   GET  /metadata  the IdP's metadata (SSO and SLO endpoints on this port)
//   GET  /sso       takes an AuthnRequest (HTTP-Redirect binding) and answers
//                   a login form carrying the request id and RelayState
//   POST /login     logs `username` in (no password: a test IdP) and answers
//                   the auto-post form to the SP's ACS with `SAMLResponse`
'use strict';

const fs = require('fs');
const express = require('express');
const saml = require('samlify');

const [spMetadataPath, keyPath, certPath, entityId, mode] = process.argv.slice(2);
if (!entityId) {
  console.error('usage: node idp.js <sp-metadata.xml> <idp.key> <idp.crt> <entity-id>');
  process.exit(2);
}

// The SP checks the XML; this IdP only reads the request's id.
saml.setSchemaValidator({ validate: async () => 'skipped' });

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const template = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{ID}" Version="2.0" IssueInstant="{IssueInstant}" Destination="{Destination}" InResponseTo="{InResponseTo}"><saml:Issuer>{Issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{StatusCode}"/></samlp:Status><saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{AssertionID}" Version="2.0" IssueInstant="{IssueInstant}"><saml:Issuer>{Issuer}</saml:Issuer><saml:Subject><saml:NameID Format="{NameIDFormat}">{NameID}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{SubjectConfirmationDataNotOnOrAfter}" Recipient="{SubjectRecipient}" InResponseTo="{InResponseTo}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{ConditionsNotBefore}" NotOnOrAfter="{ConditionsNotOnOrAfter}"><saml:AudienceRestriction><saml:Audience>{Audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{IssueInstant}" SessionIndex="{SessionIndex}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>{Group}</saml:AttributeValue></saml:Attribute><saml:Attribute Name="mail" FriendlyName="email"><saml:AttributeValue>{Mail}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>`;

const sp = saml.ServiceProvider({ metadata: fs.readFileSync(spMetadataPath, 'utf8') });
const app = express();
app.use(express.urlencoded({ extended: false }));

let idp;
const id = () => '_' + require('crypto').randomBytes(20).toString('hex');

app.get('/metadata', (req, res) => res.type('application/xml').send(idp.getMetadata()));

app.get('/sso', async (req, res) => {
  try {
    const parsed = await idp.parseLoginRequest(sp, 'redirect', { query: req.query, octetString: '' });
    const requestId = parsed.extract.request.id;
    res.type('html').send(
      `<html><body><form method="post" action="/login">` +
        `<input type="hidden" name="request_id" value="${escapeHtml(requestId)}">` +
        `<input type="hidden" name="RelayState" value="${escapeHtml(req.query.RelayState || '')}">` +
        `<input name="username" value=""><button>Log in</button></form></body></html>`,
    );
  } catch (e) {
    res.status(400).send(`bad AuthnRequest: ${e}`);
  }
});

app.post('/login', async (req, res) => {
  try {
    const username = req.body.username || 'alice';
    const now = new Date();
    const later = new Date(now.getTime() + 5 * 60 * 1000);
    const requestId = req.body.request_id || '';
    const tagReplacer = (tpl) => {
      const responseId = id();
      const acs = sp.entityMeta.getAssertionConsumerService('post');
      const context = saml.SamlLib.replaceTagsByValue(tpl, {
        ID: responseId,
        AssertionID: id(),
        Destination: acs,
        Audience: sp.entityMeta.getEntityID(),
        SubjectRecipient: acs,
        Issuer: idp.entityMeta.getEntityID(),
        IssueInstant: now.toISOString(),
        StatusCode: saml.Constants.StatusCode.Success,
        ConditionsNotBefore: now.toISOString(),
        ConditionsNotOnOrAfter: later.toISOString(),
        SubjectConfirmationDataNotOnOrAfter: later.toISOString(),
        NameIDFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        NameID: `${username}-persistent-id`,
        InResponseTo: requestId,
        SessionIndex: id(),
        Group: 'admins',
        Mail: `${username}@example.org`,
      });
      return { id: responseId, context };
    };
    const { context, entityEndpoint } = await idp.createLoginResponse(
      sp,
      { extract: { request: { id: requestId } } },
      'post',
      { email: username },
      tagReplacer,
    );
    const relay = req.body.RelayState
      ? `<input type="hidden" name="RelayState" value="${escapeHtml(req.body.RelayState)}">`
      : '';
    res.type('html').send(
      `<html><body onload="document.forms[0].submit()"><form method="post" action="${escapeHtml(entityEndpoint)}">` +
        `<input type="hidden" name="SAMLResponse" value="${escapeHtml(context)}">${relay}</form></body></html>`,
    );
  } catch (e) {
    res.status(500).send(`cannot build the Response: ${e}`);
  }
});

const server = app.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const base = `http://127.0.0.1:${port}`;
  idp = saml.IdentityProvider({
    entityID: entityId,
    privateKey: fs.readFileSync(keyPath, 'utf8'),
    signingCert: fs.readFileSync(certPath, 'utf8'),
    loginResponseTemplate: { context: template, attributes: [] },
    isAssertionEncrypted: mode === 'encrypt',
    singleSignOnService: [{ Binding: saml.Constants.namespace.binding.redirect, Location: `${base}/sso` }],
    singleLogoutService: [{ Binding: saml.Constants.namespace.binding.redirect, Location: `${base}/slo` }],
  });
  console.log(`listening on ${port}`);
});
