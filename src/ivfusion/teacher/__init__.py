"""The diffusion teacher (issue 5): PALDM -> PCLDM with IDPO, built from diffusers parts (docs/teacher.md).

Modules: ``autoencoder`` (codecs), ``properties`` (property codes, latent fusion prior), ``paldm`` (model +
DDIM sampling), ``oracles`` (detection / visual / text preferences), ``idpo`` (masked Diffusion-DPO),
``data`` (patches, instances), ``train`` (the ``ivfusion train paldm|idpo`` loops). Heavy imports stay inside
the modules so ``import ivfusion.teacher`` is free.
"""
