// Configuration files from the precompiled templates of templates/ (handlebars runtime only; the
// templates are compiled at build time by scripts/gen-templates.mjs). Pure. Loads handlebars:
// import this from the agent and the operator commands only, never from the CNI plugin's path.
import HandlebarsRuntime from 'handlebars/runtime.js';
import { birdConfTemplate } from '../templates/generated/bird.conf.js';

type Render = (view: unknown) => string;
const runtime = HandlebarsRuntime as unknown as { template(spec: object): Render };

/** The templates by name (their file name in templates/ without .hbs). */
const SPECS: Record<string, object> = {
  'bird.conf': birdConfTemplate,
};
const compiled = new Map<string, Render>();

export function templateNames(): string[] {
  return Object.keys(SPECS);
}

export function renderTemplate(name: string, view: unknown): string {
  let render = compiled.get(name);
  if (!render) {
    const spec = SPECS[name];
    if (!spec) throw new Error(`no template ${name} (there are: ${templateNames().join(', ')})`);
    render = runtime.template(spec);
    compiled.set(name, render);
  }
  return render(view);
}
