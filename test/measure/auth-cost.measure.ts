// Measures, on workerd, what authorization adds to a request: verifying a registry token (first
// use and cached), checking its scope, and the HTTP Basic path with its credential cache. Run by
// `npm run bench:workerd`; it reports figures and asserts nothing (it is not a timed test).
import { env, SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import { registryAuth } from "../../workers/registry/auth/registry-auth.ts";
import { issueRegistryToken } from "../../workers/registry/auth/registry-tokens.ts";

const ROUNDS = 20_000;

function perCall(label: string, started: number, calls: number): number {
  const micros = ((performance.now() - started) * 1000) / calls;
  console.log(`${label.padEnd(48)} ${micros.toFixed(2).padStart(9)} µs`);
  return micros;
}

it("reports the cost of authorizing one request", async () => {
  // The bootstrap admin exists once any request was served.
  expect(
    (await SELF.fetch("http://registry.test/v2/", { headers: { Authorization: basic() } })).status,
  ).toBe(200);
  const request = (authorization: string) =>
    new Request("http://registry.test/v2/acme/app/manifests/latest", {
      headers: { Authorization: authorization },
    });

  let started = performance.now();
  for (let i = 0; i < 200; i++) {
    const { token } = await issueRegistryToken(env.TOKEN_SIGNING_KEY, "edge-registry", {
      sub: "alice",
      access: [{ type: "repository", name: `acme/app${i}`, actions: ["pull"] }],
      principal: { kind: "user", id: "u1", name: "alice" },
    });
    const auth = await registryAuth(request(`Bearer ${token}`), env);
    await auth.require(`acme/app${i}`, "pull");
  }
  perCall("token: issue + first verification (ES256)", started, 200);

  const { token } = await issueRegistryToken(env.TOKEN_SIGNING_KEY, "edge-registry", {
    sub: "alice",
    access: [{ type: "repository", name: "acme/app", actions: ["pull"] }],
    principal: { kind: "user", id: "u1", name: "alice" },
  });
  started = performance.now();
  for (let i = 0; i < ROUNDS; i++) {
    const auth = await registryAuth(request(`Bearer ${token}`), env);
    await auth.require("acme/app", "pull");
  }
  const cached = perCall("token: verified before (per-isolate cache)", started, ROUNDS);

  started = performance.now();
  for (let i = 0; i < 2_000; i++) {
    const auth = await registryAuth(request(basic()), env);
    await auth.require("acme/app", "pull");
  }
  perCall("Basic straight to /v2 (cached credential, D1 access)", started, 2_000);

  started = performance.now();
  for (let i = 0; i < 2_000; i++) {
    await SELF.fetch("http://registry.test/v2/", { headers: { Authorization: `Bearer ${token}` } });
  }
  const whole = perCall("a whole GET /v2/ request with that token", started, 2_000);
  console.log(
    `authorization share of the cheapest request: ${((cached / whole) * 100).toFixed(1)} %`,
  );
});

function basic(): string {
  return `Basic ${btoa(`${env.REGISTRY_ADMIN_USER}:${env.REGISTRY_ADMIN_PASSWORD}`)}`;
}
