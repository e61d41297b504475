// drizzle-kit: generates the D1 migrations that `npm start` and the tests apply.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./schema/db/d1.ts",
  out: "./schema/migrations/d1",
});
