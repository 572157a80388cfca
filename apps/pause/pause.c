/*
 * berth-pause: the first process of every Berth pod sandbox. It holds the
 * pod's namespaces open, reaps any child that is re-parented to it (it is
 * PID 1 of the pod when the pod shares a PID namespace, and a child
 * subreaper otherwise), and exits 0 on SIGTERM or SIGINT. It is linked
 * statically so the sandbox image needs nothing but this one file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BERTH_VERSION
#define BERTH_VERSION "dev"
#endif

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }
static void on_child(int sig) { (void)sig; }

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    printf("berth-pause %s\n", BERTH_VERSION);
    return 0;
  }
  if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    fprintf(stderr, "berth-pause: cannot become a child subreaper: %s\n", strerror(errno));
  }

  /* Block the signals we wait for, then wait for them atomically with
   * sigsuspend, so that none can arrive between the check and the wait. */
  sigset_t waited, none;
  sigemptyset(&waited);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGINT);
  sigaddset(&waited, SIGCHLD);
  sigprocmask(SIG_BLOCK, &waited, NULL);
  sigemptyset(&none);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);

  for (;;) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    if (stop_signal != 0) {
      fprintf(stderr, "berth-pause: shutting down on signal %d\n", (int)stop_signal);
      return 0;
    }
    sigsuspend(&none);
  }
}
