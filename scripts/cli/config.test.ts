// Where credentials live, how they are written (0600), and how the environment overrides them.
import { mkdtempSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  configPath,
  normalizeUrl,
  readConfig,
  removeConfig,
  resolveCredentials,
  writeConfig,
} from "./config.ts";
import { CliError, EXIT } from "./errors.ts";

const temp = () => mkdtempSync(path.join(os.tmpdir(), "cli-config-"));

describe("configPath", () => {
  it("uses XDG_CONFIG_HOME, else ~/.config", () => {
    expect(configPath({ XDG_CONFIG_HOME: "/x" }, "/home/u")).toBe("/x/edge-registry/config.json");
    expect(configPath({}, "/home/u")).toBe("/home/u/.config/edge-registry/config.json");
    expect(configPath({ XDG_CONFIG_HOME: " " }, "/home/u")).toBe(
      "/home/u/.config/edge-registry/config.json",
    );
  });
});

describe("writeConfig / readConfig", () => {
  it("round-trips, with the file 0600 in a 0700 folder", async () => {
    const file = path.join(temp(), "edge-registry", "config.json");
    await writeConfig(file, {
      url: "http://r",
      token: "era_secret",
      username: "alice",
      tokenId: "t1",
    });
    expect(await readConfig(file)).toEqual({
      url: "http://r",
      token: "era_secret",
      username: "alice",
      tokenId: "t1",
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    // Rewriting keeps the mode, and leaves no temporary file behind.
    await writeConfig(file, { url: "http://r2", token: "era_other" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({
      url: "http://r2",
      token: "era_other",
    });
    expect(await removeConfig(file)).toBe(true);
    expect(await removeConfig(file)).toBe(false);
    expect(await readConfig(file)).toBeUndefined();
  });

  it("refuses a damaged file with a hint", async () => {
    const dir = temp();
    const file = path.join(dir, "config.json");
    await writeConfig(file, { url: "x" } as never);
    await expect(readConfig(file)).rejects.toThrow(/no url and token; run `edge-registry login`/);
  });
});

describe("resolveCredentials", () => {
  it("prefers REGISTRY_URL and REGISTRY_TOKEN, each on its own", async () => {
    const file = path.join(temp(), "config.json");
    await writeConfig(file, { url: "http://stored:8080", token: "era_stored", username: "alice" });
    expect(await resolveCredentials({}, file)).toEqual({
      url: "http://stored:8080",
      token: "era_stored",
      username: "alice",
    });
    expect(await resolveCredentials({ REGISTRY_TOKEN: "era_env" }, file)).toEqual({
      url: "http://stored:8080",
      token: "era_env",
    });
    expect(await resolveCredentials({ REGISTRY_URL: "http://env/" }, file)).toEqual({
      url: "http://env",
      token: "era_stored",
      username: "alice",
    });
    expect(
      await resolveCredentials(
        { REGISTRY_URL: "http://env", REGISTRY_TOKEN: "era_env" },
        path.join(temp(), "none.json"),
      ),
    ).toEqual({ url: "http://env", token: "era_env" });
  });

  it("says how to log in when nothing is configured", async () => {
    const error = await resolveCredentials({}, path.join(temp(), "none.json")).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(EXIT.auth);
    expect((error as CliError).message).toMatch(/edge-registry login/);
  });
});

describe("normalizeUrl", () => {
  it("keeps scheme, host and path without a trailing slash; bare hosts get https", () => {
    expect(normalizeUrl("http://127.0.0.1:5000/")).toBe("http://127.0.0.1:5000");
    expect(normalizeUrl("registry.example.com")).toBe("https://registry.example.com");
    expect(normalizeUrl("https://example.com/reg/")).toBe("https://example.com/reg");
    expect(() => normalizeUrl("ftp://x")).toThrow(/http or https/);
    expect(() => normalizeUrl("http://")).toThrow(/not a URL/);
  });
});
