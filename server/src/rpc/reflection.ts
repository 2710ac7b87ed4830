/**
 * Server reflection (v1 and v1alpha) for `buf curl` and grpcurl. @grpc/reflection normally reads
 * descriptors that proto-loader re-derived from .proto files, which breaks clients on `map<>`
 * fields. We feed it the exact FileDescriptorProtos that `buf build` produced (scripts/generate.mjs
 * embeds them in server/src/gen/descriptors.ts): ours, grpc.health.v1 and grpc.reflection.v1.
 */
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { FILE_DESCRIPTOR_SET_BASE64 } from "../gen/descriptors.js";

/** Splits a serialized FileDescriptorSet into its serialized FileDescriptorProtos (field 1). */
export function fileDescriptorProtos(set: Uint8Array): Buffer[] {
  const reader = new BinaryReader(set);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType, field);
  }
  return files;
}

export function addReflection(server: Server): void {
  const files = fileDescriptorProtos(Buffer.from(FILE_DESCRIPTOR_SET_BASE64, "base64"));
  // ReflectionService only reads `fileDescriptorProtos` from each entry of the package definition.
  const packageDefinition = { descriptors: { fileDescriptorProtos: files } };
  new ReflectionService(
    packageDefinition as unknown as ConstructorParameters<typeof ReflectionService>[0],
  ).addToServer(server);
}
