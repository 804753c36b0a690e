import { Module } from '@nestjs/common';
import { PlacementService } from './placement.service';

/** Choosing a target host when the request names none. */
@Module({ providers: [PlacementService], exports: [PlacementService] })
export class PlacementModule {}
