// The protobuf descriptor etcd3 builds from its .proto files at run time, made at build time:
// the same proto-loader parse (its include-path handling, the options etcd3 passes), as JSON.
import { createRequire } from 'node:module';

export function etcd3ProtoDescriptor(rpcProto) {
  // proto-loader as etcd3 resolves it (the copy etcd3 itself would load).
  const require = createRequire(rpcProto);
  const { loadProtosWithOptionsSync } = require('@grpc/proto-loader/build/src/util');
  return loadProtosWithOptionsSync(rpcProto, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }).toJSON();
}
