// bird.conf from its view model, through the precompiled templates/bird.conf.hbs (pure).
// Loads the handlebars runtime: import this module from the agent and the operator commands
// only, never from the CNI plugin's path (test/planner/bird-golden.test.ts checks the bundle).
import { renderTemplate } from '../templates.ts';
import { BIRD_TEMPLATE } from './daemon.ts';
import type { BirdView } from './view.ts';

export function renderBirdConf(view: BirdView): string {
  return renderTemplate(BIRD_TEMPLATE, view);
}
