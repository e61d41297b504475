// The Worker boots and answers the API version check for the bootstrap admin (see base.test.ts).
import { expect, it } from "vitest";
import { api } from "./helpers.ts";

it("answers /v2/", async () => {
  const res = await api("/v2/");
  expect(res.status).toBe(200);
});
