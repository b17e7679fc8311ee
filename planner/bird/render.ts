// bird.conf from its view model, through the precompiled templates/bird.conf.hbs (pure).
// Loads the handlebars runtime: import this module from the agent and the operator commands
// only, never from the CNI plugin's path (test/planner/bird-golden.test.ts checks the bundle).
import HandlebarsRuntime from 'handlebars/runtime.js';
import { birdConfTemplate } from '../../templates/generated/bird.conf.js';
import type { BirdView } from './view.ts';

type Render = (view: BirdView) => string;
const runtime = HandlebarsRuntime as unknown as { template(spec: object): Render };
let compiled: Render | null = null;

export function renderBirdConf(view: BirdView): string {
  compiled ??= runtime.template(birdConfTemplate);
  return compiled(view);
}
