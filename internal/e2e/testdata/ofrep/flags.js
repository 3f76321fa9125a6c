// A replica of the e2e tests (internal/e2e/flags_test.go) that reads its
// feature flags the way a customer's Node.js program would: the stock
// OpenFeature server SDK with its OFREP provider, pointed at
// DROVER_FLAGS_URL with DROVER_FLAGS_TOKEN. It serves what it reads on
// 127.0.0.1:$PORT:
//   GET /healthz                  ok
//   GET /flag?key=K&default=JSON  the SDK's evaluation details of K, with this process's pid
//   GET /probe?url=U&key=K        the status OFREP at U answers this process's token
'use strict';

const http = require('node:http');
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

const baseUrl = process.env.DROVER_FLAGS_URL;
const token = process.env.DROVER_FLAGS_TOKEN;
if (!baseUrl || !token) {
  console.error('DROVER_FLAGS_URL and DROVER_FLAGS_TOKEN are required');
  process.exit(2);
}
OpenFeature.setProvider(new OFREPProvider({ baseUrl, headers: [['Authorization', `Bearer ${token}`]] }));
const client = OpenFeature.getClient();

async function evaluate(key, fallback) {
  switch (typeof fallback) {
    case 'boolean': return client.getBooleanDetails(key, fallback);
    case 'number': return client.getNumberDetails(key, fallback);
    case 'string': return client.getStringDetails(key, fallback);
    default: return client.getObjectDetails(key, fallback);
  }
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  try {
    if (u.pathname === '/healthz') {
      send(res, 200, { ok: true });
    } else if (u.pathname === '/flag') {
      const details = await evaluate(u.searchParams.get('key'), JSON.parse(u.searchParams.get('default') ?? 'false'));
      send(res, 200, { pid: process.pid, ...details });
    } else if (u.pathname === '/probe') {
      const r = await fetch(`${u.searchParams.get('url')}/ofrep/v1/evaluate/flags/${u.searchParams.get('key')}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ context: { targetingKey: 'probe' } }),
      });
      send(res, 200, { status: r.status, body: await r.text() });
    } else {
      send(res, 404, { error: 'not found' });
    }
  } catch (err) {
    send(res, 500, { error: String(err) });
  }
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`reading flags from ${baseUrl}`);
});
