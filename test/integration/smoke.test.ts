import { SELF } from "cloudflare:test";
import { expect, it } from "vitest";

it("answers /v2/", async () => {
  const res = await SELF.fetch("http://registry.test/v2/");
  expect(res.status).toBe(200);
});
