/**
 * The credentials the gRPC server binds with, built from config: plaintext, TLS, or mutual TLS
 * (client certificates verified against tls.client.ca, required or optional). Health and
 * reflection share the port, so they are served over the same credentials.
 *
 * Invariants:
 * - runs before anything binds: the safe-default rule (exposure.ts) is applied first, then every
 *   PEM file is read and parsed here, so a bad setting stops the start with a ConfigError naming the
 *   file and what to fix, never a crash inside grpc-js or a listener that drops every handshake;
 * - combinations of settings are checked again here (checkTlsSettings, as loadConfig does), so a
 *   config built by hand (startBrokerWithConfig) with half a TLS setup is refused, never served
 *   as plaintext;
 * - optional mutual TLS (a client CA without require.client.cert) requests a certificate and lets a
 *   client without one (or with one the CA did not sign) in; grpc-js then reports no peer
 *   certificate for it (`call.getAuthContext()` carries one only when it verified).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { experimental, ServerCredentials } from "@grpc/grpc-js";
import { type BrokerConfig, ConfigError, checkTlsSettings, parseListen } from "../config.js";
import type { Logger } from "../logger.js";
import { decideExposure } from "./exposure.js";

type TlsConfig = Pick<
  BrokerConfig,
  "listen" | "tlsCert" | "tlsKey" | "tlsClientCa" | "requireClientCert" | "insecure" | "metricsPort"
>;

/** Which transport the server uses, for logs and tests. */
export type TransportMode = "plaintext" | "tls" | "mtls-optional" | "mtls-required";

export interface BuiltCredentials {
  credentials: ServerCredentials;
  mode: TransportMode;
}

async function readPem(file: string, setting: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(`${setting}: cannot read "${file}" (${code}); give a readable PEM file`);
  }
  if (!data.includes("-----BEGIN ")) {
    throw new ConfigError(`${setting}: "${file}" is not a PEM file (no "-----BEGIN" line)`);
  }
  return data;
}

function parseCert(pem: Buffer, file: string, setting: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new ConfigError(`${setting}: "${file}" holds no valid PEM certificate (${(err as Error).message})`);
  }
}

function parseKey(pem: Buffer, file: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(
      `tls.key: "${file}" holds no valid unencrypted PEM private key (${(err as Error).message})`,
    );
  }
}

/** A certificate provider that hands out fixed PEMs (for optional mutual TLS, see below). */
function staticProvider(
  ca: Buffer | undefined,
  identity: { certificate: Buffer; privateKey: Buffer } | undefined,
): experimental.CertificateProvider {
  // grpc-js reads the first credentials before it subscribes a server's watcher: answering in the
  // same tick would be missed, so updates go out on the next microtask, as a file watcher's would.
  return {
    addCaCertificateListener: (l) => queueMicrotask(() => l(ca ? { caCertificate: ca } : null)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => queueMicrotask(() => l(identity ?? null)),
    removeIdentityCertificateListener: () => {},
  };
}

/**
 * Decides whether the configured listeners may start (throws ConfigError when not; logs the
 * `--insecure` warnings) and builds the gRPC server credentials, reading every PEM file.
 */
export async function buildServerCredentials(config: TlsConfig, logger: Logger): Promise<BuiltCredentials> {
  checkTlsSettings(config);
  const { host } = parseListen(config.listen);
  const tls = config.tlsCert !== undefined;
  const decision = decideExposure({ host, tls, metricsPort: config.metricsPort, insecure: config.insecure });
  if (!decision.ok) throw new ConfigError(decision.error);
  for (const warning of decision.warnings) logger.warn({ listen: config.listen }, warning);
  if (config.tlsCert === undefined || config.tlsKey === undefined) {
    return { credentials: ServerCredentials.createInsecure(), mode: "plaintext" };
  }

  const certPem = await readPem(config.tlsCert, "tls.cert");
  const keyPem = await readPem(config.tlsKey, "tls.key");
  const cert = parseCert(certPem, config.tlsCert, "tls.cert");
  const key = parseKey(keyPem, config.tlsKey);
  if (!cert.checkPrivateKey(key)) {
    throw new ConfigError(
      `tls.key "${config.tlsKey}" is not the private key of the certificate in tls.cert "${config.tlsCert}"`,
    );
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now) {
    logger.warn(
      { file: config.tlsCert, validFrom: cert.validFrom, validTo: cert.validTo },
      "tls.cert is not valid at this time: clients will refuse the handshake",
    );
  }
  let caPem: Buffer | undefined;
  if (config.tlsClientCa !== undefined) {
    caPem = await readPem(config.tlsClientCa, "tls.client.ca");
    parseCert(caPem, config.tlsClientCa, "tls.client.ca");
  }
  try {
    // The same check grpc-js's TLS server makes, with our message: a chain or CA bundle that does
    // not load would otherwise fail every handshake, or throw inside bindAsync.
    createSecureContext({ cert: certPem, key: keyPem, ...(caPem ? { ca: caPem } : {}) });
  } catch (err) {
    throw new ConfigError(
      `tls.cert/tls.key/tls.client.ca: the PEM files do not load together (${(err as Error).message})`,
    );
  }
  logger.info(
    { subject: cert.subject, validTo: cert.validTo, clientCa: config.tlsClientCa },
    "serving gRPC over TLS",
  );

  const pair = { cert_chain: certPem, private_key: keyPem };
  if (caPem === undefined) {
    return { credentials: ServerCredentials.createSsl(null, [pair], false), mode: "tls" };
  }
  if (config.requireClientCert) {
    return { credentials: ServerCredentials.createSsl(caPem, [pair], true), mode: "mtls-required" };
  }
  // createSsl either requires a client certificate or never asks for one; optional mutual TLS
  // (request it, verify it when given) needs the provider-based credentials.
  // grpc-js's signature names its first parameter caCertificateProvider, but it passes it on as the
  // identity provider (the second, nullable one is the CA): identity first, then CA.
  const credentials = experimental.createCertificateProviderServerCredentials(
    staticProvider(undefined, { certificate: certPem, privateKey: keyPem }),
    staticProvider(caPem, undefined),
    false,
  );
  return { credentials, mode: "mtls-optional" };
}
