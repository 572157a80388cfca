/** The shape of one method in a generated grpc-js service definition. */
export interface MethodDefinition<Req = any, Res = any> {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: Req) => Buffer;
  requestDeserialize: (value: Buffer) => Req;
  responseSerialize: (value: Res) => Buffer;
  responseDeserialize: (value: Buffer) => Res;
}

export type ServiceDefinition = Record<string, MethodDefinition>;

export type RequestOf<M> = M extends MethodDefinition<infer Req, any> ? Req : never;
export type ResponseOf<M> = M extends MethodDefinition<any, infer Res> ? Res : never;

/** Method names of a service definition that are unary (no stream either way). */
export type UnaryMethods<S extends ServiceDefinition> = {
  [K in keyof S]: S[K]['requestStream'] extends false ? (S[K]['responseStream'] extends false ? K : never) : never;
}[keyof S];

/** Method names whose response is a server stream. */
export type ServerStreamMethods<S extends ServiceDefinition> = {
  [K in keyof S]: S[K]['requestStream'] extends false ? (S[K]['responseStream'] extends true ? K : never) : never;
}[keyof S];

/** Method names that stream both ways. */
export type BidiStreamMethods<S extends ServiceDefinition> = {
  [K in keyof S]: S[K]['requestStream'] extends true ? (S[K]['responseStream'] extends true ? K : never) : never;
}[keyof S];
