/* coord_toyrun DIR ROUNDS STRATEGY SLEEP_US: runs the toy federation with checkpoints in
 * DIR (resuming if a checkpoint is there), sleeping SLEEP_US per local training so a test
 * can kill -9 it at any moment. Exit 0 when the run finished. */
#include "toyfed.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: coord_toyrun DIR ROUNDS STRATEGY SLEEP_US\n");
        return 2;
    }
    ff_log_set_level(FF_LOG_WARN);
    toy_fed f;
    toy_init(&f);
    f.sleep_us = (unsigned)atoi(argv[4]);
    ff_coord_config cfg;
    toy_config(&cfg, argv[1], atoi(argv[2]), atoi(argv[3]));
    cfg.sampling.mode = FF_SAMPLE_FRACTION;
    cfg.sampling.fraction = 0.5;
    cfg.seed = 3;
    cfg.strategy.server_lr = 0.05;
    int rc = toy_run(&f, &cfg, NULL, NULL, NULL);
    if (rc != 1)
        fprintf(stderr, "coord_toyrun: %s\n", ff_error_message());
    ff_coord_config_free(&cfg);
    toy_free(&f);
    return rc == 1 ? 0 : 1;
}
