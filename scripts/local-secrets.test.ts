import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  ensureLocalSecrets,
  LOCAL_SECRETS,
  quoteDotenvValue,
  readablePassword,
} from "./local-secrets.ts";

const SECRET_NAMES = LOCAL_SECRETS.map((spec) => spec.name);

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "local-secrets-"));
  dirs.push(dir);
  return path.join(dir, "nested", ".dev.vars");
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("ensureLocalSecrets", () => {
  it("generates every secret on first use, into a private file", async () => {
    const file = tempFile();
    const { values, created } = await ensureLocalSecrets(file);
    expect(created).toEqual(SECRET_NAMES);
    expect(created.slice(0, 3)).toEqual([
      "URL_SIGNING_SECRET",
      "REGISTRY_ADMIN_PASSWORD",
      "TOKEN_SIGNING_KEY",
    ]);
    expect(values.URL_SIGNING_SECRET).toMatch(/^[0-9a-f]{64}$/);
    expect(values.REGISTRY_ADMIN_PASSWORD).toMatch(/^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
    expect(JSON.parse(values.TOKEN_SIGNING_KEY!)).toMatchObject({ kty: "EC", crv: "P-256" });
    expect(values.WEBHOOK_SECRET_KEY).toMatch(/^[0-9a-f]{64}$/);
    expect(parseEnv(readFileSync(file, "utf8"))).toEqual(values);
    expect(statSync(file).mode & 0o077).toBe(0);
  });

  it("reuses what exists, keeps hand-written lines, appends only what is missing", async () => {
    const file = tempFile();
    await ensureLocalSecrets(file, []);
    expect(existsSync(file)).toBe(false); // nothing to generate, nothing written
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, "# mine\nR2_ACCESS_KEY_ID=abc\nURL_SIGNING_SECRET=kept"); // no final newline
    const first = await ensureLocalSecrets(file);
    expect(first.created).toEqual(SECRET_NAMES.filter((name) => name !== "URL_SIGNING_SECRET"));
    expect(first.values.URL_SIGNING_SECRET).toBe("kept");
    expect(first.values.R2_ACCESS_KEY_ID).toBe("abc");
    const text = readFileSync(file, "utf8");
    expect(text.startsWith("# mine\nR2_ACCESS_KEY_ID=abc\nURL_SIGNING_SECRET=kept\n")).toBe(true);

    const second = await ensureLocalSecrets(file);
    expect(second.created).toEqual([]);
    expect(second.values).toEqual(first.values);
    expect(readFileSync(file, "utf8")).toBe(text);
  });

  it("takes new secret kinds, such as a JSON key, in one entry each", async () => {
    const file = tempFile();
    const jwk = JSON.stringify({ kty: "EC", crv: "P-256", d: "x y", x: "a", y: "b" });
    const { values } = await ensureLocalSecrets(file, [
      { name: "JWT_SIGNING_KEY", comment: "ES256 private key (JWK).", generate: async () => jwk },
    ]);
    expect(values.JWT_SIGNING_KEY).toBe(jwk);
    expect(parseEnv(readFileSync(file, "utf8")).JWT_SIGNING_KEY).toBe(jwk);
  });
});

describe("quoteDotenvValue", () => {
  it("leaves plain tokens bare and quotes the rest, refusing what dotenv cannot hold", () => {
    expect(quoteDotenvValue("abc-DEF_1.2")).toBe("abc-DEF_1.2");
    expect(quoteDotenvValue('{"a":1} #x')).toBe(`'{"a":1} #x'`);
    expect(() => quoteDotenvValue("it's")).toThrow();
    expect(() => quoteDotenvValue("two\nlines")).toThrow();
  });
});

it("readablePassword has no look-alike characters", () => {
  for (let i = 0; i < 50; i++) expect(readablePassword()).not.toMatch(/[01lIoO]/);
});
