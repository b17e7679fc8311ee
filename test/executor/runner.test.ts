// How a failed tool's output reads in a step's failure (executor/runner.ts failureText).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failureText } from '../../executor/runner.ts';

test('a program the verifier refused (bpftool loads) reads with the verifier\'s verdict first, not only the log\'s statistics', () => {
  const insns = Array.from({ length: 60 }, (_, i) => `${i}: (bf) r1 = r6                     ; R1_w=ctx() R6=ctx()`).join('\n');
  const stderr = `libbpf: prog 'tcni_from_pod': BPF program load failed: Permission denied\nlibbpf: prog 'tcni_from_pod': -- BEGIN PROG LOAD LOG --\n${insns}\n'struct nf_conn' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN\nprocessed 305 insns (limit 1000000) max_states_per_insn 0 total_states 21 peak_states 21 mark_read 0\n-- END PROG LOAD LOG --\nlibbpf: prog 'tcni_from_pod': failed to load: -13\nError: failed to load object file\n`;
  const got = failureText(stderr);
  assert.ok(got.startsWith('verifier: \'struct nf_conn\' access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN; …'), got.slice(0, 120));
  assert.match(got, /failed to load: -13/, 'the tail as before');
  assert.equal(failureText('Error: bpf obj get (/sys/fs/bpf/x): No such file or directory'), 'Error: bpf obj get (/sys/fs/bpf/x): No such file or directory', 'no load log: as it was');
});
