import * as grpc from '@grpc/grpc-js';

/** The status a call failed with, by name, and its details (fails the test when the call succeeds). */
export async function failureOf(p: Promise<unknown>): Promise<{ code: string; details: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as grpc.ServiceError,
  );
  if (!err) throw new Error('expected the call to fail');
  return { code: grpc.status[err.code], details: err.details };
}
