#ifndef BOARD_H
#define BOARD_H
#include <stdint.h>
void board_print(const char *text);
void board_exit(int ok);
uint32_t board_stack_used(void);
void board_timer_start(void);
uint32_t board_ticks(void);
#endif
