// A small CRI client for the end-to-end tests: what kubelet asks of a runtime for a pod's
// sandbox, over gRPC on the runtime's unix socket (no crictl package exists on Debian).
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from './netns.ts';

const PROTO = join(ROOT, 'test', 'helpers', 'cri-runtime-v1.proto');

export interface PortMapping {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  container_port: number;
  host_port: number;
  host_ip?: string;
}

export interface SandboxSpec {
  name: string;
  namespace?: string;
  uid: string;
  hostname?: string;
  portMappings?: PortMapping[];
  labels?: Record<string, string>;
  /** cgroupfs path the sandbox's cgroup goes under, e.g. `/test-prefix` */
  cgroupParent?: string;
}

export interface SandboxStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  ip: string;
  /** containerd's verbose info: the sandbox's pause pid and its netns path */
  pid: number | null;
  netns: string | null;
}

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

let definition: grpc.GrpcObject | null = null;
function runtimeService(): grpc.ServiceClientConstructor {
  definition ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true }),
  );
  const v1 = (definition.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return v1.RuntimeService as grpc.ServiceClientConstructor;
}

export class CriClient {
  private readonly client: grpc.Client;

  constructor(socket: string, private readonly timeoutMs = 60_000) {
    this.client = new (runtimeService())(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  private call<T>(method: string, req: unknown): Promise<T> {
    const fn = (this.client as unknown as Record<string, Unary>)[method]!.bind(this.client);
    return new Promise((resolve, reject) => {
      fn(req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ version: string; runtime_name: string; runtime_version: string; runtime_api_version: string }> {
    return this.call('Version', { version: 'v1' });
  }

  async runPodSandbox(spec: SandboxSpec): Promise<string> {
    const config = {
      metadata: { name: spec.name, uid: spec.uid, namespace: spec.namespace ?? 'default', attempt: 0 },
      hostname: spec.hostname ?? spec.name,
      port_mappings: spec.portMappings ?? [],
      labels: spec.labels ?? {},
      linux: { cgroup_parent: spec.cgroupParent ?? '' },
    };
    const res = await this.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config });
    return res.pod_sandbox_id;
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call('StopPodSandbox', { pod_sandbox_id: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call('RemovePodSandbox', { pod_sandbox_id: id });
  }

  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const res = await this.call<{ status: { id: string; state: SandboxStatus['state']; network: { ip: string } | null }; info: Record<string, string> }>(
      'PodSandboxStatus', { pod_sandbox_id: id, verbose: true },
    );
    let info: { pid?: number; runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } } = {};
    try {
      info = JSON.parse(res.info.info ?? '{}');
    } catch { /* leave pid and netns unknown */ }
    const netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path ?? null;
    return { id: res.status.id, state: res.status.state, ip: res.status.network?.ip ?? '', pid: info.pid ?? null, netns };
  }

  async listPodSandbox(labels: Record<string, string> = {}): Promise<{ id: string; state: string }[]> {
    const res = await this.call<{ items: { id: string; state: string }[] }>('ListPodSandbox', { filter: { label_selector: labels } });
    return res.items.map((i) => ({ id: i.id, state: i.state }));
  }

  close(): void {
    this.client.close();
  }
}
