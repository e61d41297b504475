// The hooks Worker's entry (itty-router): `POST /hooks/{github|gitlab|generic}/:triggerId`.
// Nothing else is served; a crash is logged and answered 500 without details.
import { AutoRouter, error, type IRequest } from "itty-router";
import type { HooksEnv } from "./env.ts";
import { handleHook } from "./hook-handler.ts";

const router = AutoRouter<IRequest, [HooksEnv, ExecutionContext]>({
  catch: (failure: unknown, request: IRequest) => {
    console.error(`${request.method} ${new URL(request.url).pathname} failed`, failure);
    return error(500, "internal error");
  },
});

router.post("/hooks/:provider/:triggerId", (request, env, ctx) =>
  handleHook(request, env, ctx, request.params.provider!, request.params.triggerId!),
);
router.all("/hooks/:provider/:triggerId", () => {
  const response = error(405, "webhooks are POSTed");
  response.headers.set("Allow", "POST");
  return response;
});

export default {
  fetch: (request, env, ctx) => router.fetch(request, env, ctx),
} satisfies ExportedHandler<HooksEnv>;
