// Who a service acts for in one request: the principal, their address, and where events go.
import type { EventActor } from "../../../schema/events.ts";
import type { Principal } from "../auth/principals.ts";
import type { EventSink, NewEvent } from "./events.ts";

export interface RequestContext {
  principal: Principal;
  /** Overrides the actor events name (a build pushing with its build token). */
  actor?: EventActor;
  clientIp?: string;
  events: EventSink;
}

export function actorOf(principal: Principal): EventActor {
  if (principal.kind === "anonymous") return { kind: "anonymous" };
  if (principal.kind === "user" && principal.tokenId)
    return { kind: "token", name: principal.name, id: principal.tokenId };
  return { kind: principal.kind, name: principal.name, id: principal.id };
}

/** Emits an event on behalf of the request's principal. */
export function emitFor(ctx: RequestContext, event: Omit<NewEvent, "actor" | "clientIp">): void {
  ctx.events.emit({
    ...event,
    actor: ctx.actor ?? actorOf(ctx.principal),
    ...(ctx.clientIp ? { clientIp: ctx.clientIp } : {}),
  });
}
