namespace pggw { const char* version() { return PGGW_VERSION; } }
