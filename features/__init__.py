"""siyu data contract, validation and feature builders."""
