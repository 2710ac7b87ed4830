import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import { type RpcContext, track } from "./context.js";
import { toServiceError } from "./status.js";

export type Handler<Req, Res> = (ctx: RpcContext, req: Req) => Promise<Res> | Res;

/** Adapts an async handler to a grpc-js unary callback, replying exactly once. */
export function unary<Req, Res>(ctx: RpcContext, handler: Handler<Req, Res>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    const work = Promise.resolve().then(() => handler(ctx, call.request));
    void track(ctx, work).then(
      (res) => cb(null, res),
      (err) => cb(toServiceError(err, ctx.logger)),
    );
  };
}
