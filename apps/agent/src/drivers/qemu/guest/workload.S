/*
 * flexmig guest workload: a 512-byte boot sector that keeps writing guest memory in a known pattern.
 * Modelled on QEMU's tests/migration/i386/a-b-bootblock.S (see reference/qemu-migration.md section 8).
 *
 * Real mode -> 32-bit protected mode (flat GDT), A20 on, 'A' to COM1; then forever: for each 4 KiB
 * page in [MEM_START, MEM_END) increment the page's first byte, spinning DELAY iterations after each
 * page (0 = as fast as the CPU goes; the delay sets the dirty rate and is slowed down by auto-converge's
 * throttle like any guest work). After every MARK_EVERY full passes write 'B' to COM1.
 *
 * Parameters are given at build time with `as --defsym NAME=VALUE` (build-guest.ts):
 *   MEM_START   first byte of the range, page aligned, >= 1 MiB
 *   MEM_END     end of the range (exclusive), page aligned
 *   MARK_EVERY  passes between two 'B' markers (>= 1)
 *   DELAY       spin iterations after each page write (>= 0)
 */
        .code16
        .text
        .globl _start
_start:
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        lgdtl   gdtdesc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $8, $pmode

        .code32
pmode:
        movl    $16, %eax
        movl    %eax, %ds
        movl    %eax, %es
        movl    %eax, %fs
        movl    %eax, %gs
        movl    %eax, %ss
        /* A20 through the fast A20 gate (port 0x92) */
        movw    $0x92, %dx
        inb     (%dx), %al
        orb     $2, %al
        outb    %al, (%dx)
        movl    $0x7c00, %esp
        movw    $0x3f8, %dx
        movb    $'A', %al
        outb    %al, (%dx)
        xorl    %ecx, %ecx              /* passes since the last marker */
mainloop:
        movl    $MEM_START, %ebx
page:
        incb    (%ebx)
        movl    $DELAY, %esi
        testl   %esi, %esi
        jz      2f
1:      decl    %esi
        jnz     1b
2:      addl    $4096, %ebx
        cmpl    $MEM_END, %ebx
        jb      page
        incl    %ecx
        cmpl    $MARK_EVERY, %ecx
        jb      mainloop
        xorl    %ecx, %ecx
        movb    $'B', %al
        outb    %al, (%dx)
        jmp     mainloop

        .p2align 3
gdt:
        .quad   0                               /* null */
        .word   0xffff, 0                       /* 8: code, flat 4 GiB, 32-bit */
        .byte   0, 0x9a, 0xcf, 0
        .word   0xffff, 0                       /* 16: data, flat 4 GiB */
        .byte   0, 0x92, 0xcf, 0
gdtdesc:
        .word   gdtdesc - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
