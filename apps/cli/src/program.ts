import { Command, Option } from 'commander';
import { registerAuth } from './commands/auth';
import { registerClusters } from './commands/clusters';
import { registerCompletion } from './commands/completion';
import { registerEvacuations } from './commands/evacuations';
import { registerEvents } from './commands/events';
import { registerInventory } from './commands/inventory';
import { registerMigrations } from './commands/migrations';
import { registerReconciliation } from './commands/reconciliation';
import { DEFAULT_URL, defaultConfigPath } from './config';
import { exitCodesHelp } from './exit-codes';
import { OUTPUT_FORMATS } from './output';

const connectionHelp = `Connection (highest first): --url/--token, then FLEXMIG_URL/FLEXMIG_TOKEN, then the config file
(--config, else FLEXMIG_CONFIG, else ${defaultConfigPath()}: YAML with url, token, tokenFile, timeoutMs),
then the default URL ${DEFAULT_URL} (the console: one URL for the whole API).`;

/** The command tree: one module per command group. */
export function buildProgram(): Command {
  const program = new Command('flexmig')
    .description('flexmig: live migration of VMs across hosts of different CPU generations, from the command line')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .option('--url <url>', `the API's URL (default: FLEXMIG_URL, else the config file, else ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token (default: FLEXMIG_TOKEN, else the config file)')
    .option('--config <file>', `config file (default: FLEXMIG_CONFIG, else ${defaultConfigPath()})`)
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', `\n${connectionHelp}\n\n${exitCodesHelp}`)
    .showSuggestionAfterError();
  registerInventory(program);
  registerClusters(program);
  registerMigrations(program);
  registerEvacuations(program);
  registerReconciliation(program);
  registerEvents(program);
  registerCompletion(program);
  registerAuth(program);
  return program;
}
