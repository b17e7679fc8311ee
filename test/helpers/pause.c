/* The sandbox process of the end-to-end tests' pause image: holds the pod's namespaces open,
 * reaps what gets reparented to it, exits on SIGINT/SIGTERM. Built with gcc -static, so the
 * image needs no libc. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
