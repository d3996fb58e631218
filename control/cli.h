/* Subcommands other than run/lint that live in their own files.
 * argv excludes the subcommand name; return the process exit code. */
#ifndef SL_CLI_H
#define SL_CLI_H
int sl_cli_test(int argc, char **argv);
int sl_cli_lua(int argc, char **argv);
int sl_cli_migrate(int argc, char **argv);
#endif
